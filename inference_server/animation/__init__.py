"""Character animation: rigs, bone mapping, retargeting, foot locking and clip tools (host-neutral numpy)."""
