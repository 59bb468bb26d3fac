"""Coral Edge TPU: target, `edgetpu:` section, op table and checks, compiler and its log, estimates."""
