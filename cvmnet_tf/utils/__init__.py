"""Small utilities shared by the whole package (no TensorFlow, no Keras).

- :mod:`.atomic_io`: crash-safe writes (temporary name + rename), for files and folders.
- :mod:`.text`: message helpers ("first N items ... and M more").
"""
