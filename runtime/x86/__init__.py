"""x86-64 instruction analysis for probe sites: decode, classify once, build slots."""
