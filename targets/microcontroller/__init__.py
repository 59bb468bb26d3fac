"""Microcontrollers running TensorFlow Lite Micro: target, `microcontroller:` section, TFLM, C sources, arm-gcc."""
