"""Linux single-board computers running tflite-runtime on the CPU."""
