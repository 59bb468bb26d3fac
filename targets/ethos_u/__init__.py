"""Arm Ethos-U NPUs: target, `ethos_u:` section, Vela."""
