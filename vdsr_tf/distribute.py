"""Which devices and machines a training run uses, and how a global batch is split across them.

One process: MirroredStrategy over all GPUs when there are several, else the
default strategy. Several processes (`TF_CONFIG` names a cluster, as on Cloud
or Kubernetes): MultiWorkerMirroredStrategy, each worker computing its share
of every global batch; gradients are summed over all of them before the clip.
"""

import json
import os

import numpy as np
import tensorflow as tf


def cluster_from_environment() -> dict | None:
    """The parsed `TF_CONFIG` when it names a cluster of more than one task, else None.

    Raises:
      ValueError: naming TF_CONFIG, if it is not JSON or this task is not in its cluster.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        cluster, task = config.get("cluster", {}), config.get("task", {})
    except (ValueError, AttributeError) as error:
        raise ValueError(f"TF_CONFIG: not a JSON object ({error})") from None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError("TF_CONFIG: 'cluster' and 'task' must be JSON objects")
    tasks = sum(len(addresses) for addresses in cluster.values() if isinstance(addresses, list))
    if tasks <= 1:
        return None
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise ValueError(f"TF_CONFIG: this task ({kind} {index}) is not one of the cluster's {sorted(cluster)}")
    return config


def default_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy for a TF_CONFIG cluster, MirroredStrategy for several GPUs, else the default."""
    if cluster_from_environment():
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, but on a multi-worker run's other workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    kind, index = resolver.task_type, resolver.task_id
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in resolver.cluster_spec().as_dict())


def distribute(strategy: tf.distribute.Strategy, array: np.ndarray):
    """Splits a global batch evenly across the strategy's replicas (on every worker, each takes its part)."""
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return tf.constant(array)
    parts = np.split(array, replicas)
    return strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(parts[context.replica_id_in_sync_group])
    )
