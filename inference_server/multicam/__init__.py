"""Several cameras filming one take: their calibration (reading the files people have, and calibrating
when there is none) and capture from all their views at once."""
