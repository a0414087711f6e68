"""`python main.py FLAGS` is the `vdsr` command: the flags and modes live in vdsr_tf/cli.py (see --help)."""

from vdsr_tf.cli import run

if __name__ == "__main__":
    run()
