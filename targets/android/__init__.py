"""Android phones running LiteRT on the CPU."""
