"""Media for the model: images, video frames (PyAV), the worker's cache of stored files."""
