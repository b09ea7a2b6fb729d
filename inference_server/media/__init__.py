"""Media input: probing and decoding video files and image sequences into RGB frames."""

from inference_server.media.video import Frame, MediaInfo, iter_frames, poster_frame_png, probe

__all__ = ["Frame", "MediaInfo", "iter_frames", "poster_frame_png", "probe"]
