"""Small utilities shared by the whole package (no TensorFlow, no Keras).

- :mod:`.atomic_io`: crash-safe writes (temporary name + rename), for files and folders,
  and the removal of what killed writers left behind.
- :mod:`.startup`: TensorFlow's start-up banners filtered out of a command's output.
- :mod:`.test_hooks`: a pause point a test can kill a process at (set only by the tests).
- :mod:`.text`: message helpers ("first N items ... and M more").
"""
