"""Released TF1 CVM-Net checkpoints written by the tests: the released variable names and
shapes (inference/tf1's table) with random values, saved by a real TF1 Saver."""
import numpy as np
import tensorflow as tf

__all__ = ["VGG", "D", "normal", "released_tf1_variables", "write_tf1_checkpoint"]

D = 512  # VGG16 conv5_3 channels (the released code's feature size)
VGG = [("conv1_1", 3, 64), ("conv1_2", 64, 64), "pool", ("conv2_1", 64, 128), ("conv2_2", 128, 128), "pool",
       ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), "pool",
       ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), "pool",
       ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)]


def normal(rng, std, shape):
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)


def released_tf1_variables(model_name, rng, num_clusters, descriptor_dim, vgg_only=False):
    """Released names and shapes with random values (scaled to keep activations O(1));
    ``vgg_only``: the VGG_grd/VGG_sat part alone."""
    K, DIM = num_clusters, descriptor_dim
    v = {}
    for branch in ("VGG_grd", "VGG_sat"):
        for item in VGG:
            if item == "pool":
                continue
            name, cin, cout = item
            v[f"{branch}/{name}/weights"] = normal(rng, np.sqrt(2.0 / (9 * cin)), (3, 3, cin, cout))
            v[f"{branch}/{name}/biases"] = normal(rng, 0.05, (cout,))
    if vgg_only:
        pass
    elif model_name == "cvm_net_i":
        for s in ("netvlad_grd", "netvlad_sat"):
            v[f"{s}/cluster_weights"] = normal(rng, 1 / np.sqrt(D), (D, K))
            v[f"{s}/cluster_biases"] = normal(rng, 1 / np.sqrt(D), (K,))
            v[f"{s}/cluster_weights2"] = normal(rng, 1 / np.sqrt(D), (1, D, K))
        v["dim_reduction/fc1/weights"] = normal(rng, 0.05, (D * K, DIM))
        v["dim_reduction/fc1/biases"] = normal(rng, 0.1, (DIM,))
    else:
        for s, k in (("transformation_trans/sat_trans_conv1", 1), ("transformation_trans/grd_trans_conv1", 1),
                     ("transformation_trans_shared/trans_conv1", 3), ("transformation_trans_shared/trans_conv2", 1)):
            v[f"{s}/weights"] = normal(rng, np.sqrt(2.0 / (k * k * D)), (k, k, D, D))
            v[f"{s}/biases"] = normal(rng, 0.05, (D,))
        v["netvlad/cluster_weights"] = normal(rng, 1 / np.sqrt(D), (D, K))
        v["netvlad/cluster_biases"] = normal(rng, 1 / np.sqrt(D), (K,))
        v["netvlad/cluster_weights2"] = normal(rng, 1 / np.sqrt(D), (1, D, K))
        v["netvlad/hidden1_weights"] = normal(rng, 1 / np.sqrt(K), (D * K, DIM))
    return {k: np.asarray(a, np.float32) for k, a in v.items()}


def write_tf1_checkpoint(prefix, values, with_optimizer=True):
    """A real TF1-format checkpoint (graph mode + tf.compat.v1.train.Saver)."""
    with tf.Graph().as_default():
        names = list(values)
        if with_optimizer:  # what the released training script also saves
            extra = {names[0] + "/Adam": np.zeros_like(values[names[0]]),
                     names[0] + "/Adam_1": np.zeros_like(values[names[0]]),
                     "beta1_power": np.float32(0.9), "beta2_power": np.float32(0.999),
                     "Variable": np.int32(123)}
            values = dict(values, **extra)
        variables = [tf.compat.v1.Variable(tf.zeros(np.shape(a), tf.as_dtype(np.asarray(a).dtype)), name=n)
                     for n, a in values.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            for var, a in zip(variables, values.values()):
                var.load(a, sess)
            saver.save(sess, prefix, write_meta_graph=False)
