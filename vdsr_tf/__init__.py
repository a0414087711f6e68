"""VDSR (Kim, Lee, Lee, CVPR 2016) in TensorFlow/Keras.

Array conventions used throughout the package:
  * images are HxW or HxWxC NumPy arrays, channels last, RGB order;
  * uint8 only at file boundaries and where MATLAB itself rounds to uint8;
  * the network sees float32 luminance (Y) in [0, 1] of shape (N, H, W, 1);
  * metrics are computed in float64 on uint8-valued Y.
"""

__version__ = "0.9.12"
