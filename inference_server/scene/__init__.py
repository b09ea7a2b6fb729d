"""Scene generation: seamless textures and 360 degree worlds from text on torch + diffusers."""
