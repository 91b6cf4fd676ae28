"""Using a trained model: loading it, encoding images, descriptor files, serving, TF1 weights.

- :mod:`.checkpoints`: the checkpoint layout of a training run (file names, ``state.json``)
  and :func:`load_model` (a checkpoint folder or a ``.keras`` file), shared by training,
  export, extraction and localization.
- :mod:`.encoders`: :class:`RawImageEncoder` / :func:`load_encoder` (uint8 images of any
  size -> descriptors, from a SavedModel or a checkpoint) and :func:`encode_image_files`.
- :mod:`.descriptors`: descriptors of dataset splits (:func:`extract_descriptors`) and the
  descriptor files (``.npy`` + OriCNN ``.mat``) written and read by the tools.
- :mod:`.serving`: the SavedModel export (``cvmnet-export``).
- :mod:`.tf1`: the released TF1 checkpoints' variable names and the converter
  (``cvmnet-convert-tf1``), the released bundle's init models as ``--weights``.
- :mod:`.fingerprint`: the model fingerprint (architecture + weights) that tile indexes record.
- :mod:`.reproduce`: the released checkpoints' CVUSA numbers in one call (``cvmnet-reproduce``).

TensorFlow and Keras are imported by the functions that need them.
"""
from cvmnet_tf.inference.checkpoints import CheckpointError, load_model
from cvmnet_tf.inference.encoders import RawImageEncoder, encode_image_files, load_encoder, read_rgb

__all__ = ["CheckpointError", "load_model", "RawImageEncoder", "load_encoder", "encode_image_files", "read_rgb"]
