"""The cameras that filmed a clip as Blender camera objects (main thread, inside the write-back's undo
step): lens, sensor fit, shift and pose from each keygrip.projection.VideoCamera, the render size and
pixel aspect of the first, and each camera's video as its background, so that looking through a
camera the rig lies on the person in that video.

The cameras arrive in rig space (Y-up metres, RigAnimation.cameras): they are placed as the rig's
bones are, through axes.Y_UP_TO_Z_UP and the armature object's location and rotation (its scale
turns armature units into metres and so cancels out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from keygrip.lens import Lens
from keygrip.projection import VideoCamera

from . import axes

BACKGROUND_ALPHA = 0.6  # the video under the rig, the rig still readable over it


@dataclass
class PlacedCameras:
    """objects: the camera objects, in the clip's order; clips: the videos loaded as backgrounds;
    warnings: cameras whose video was not found."""

    objects: list[bpy.types.Object] = field(default_factory=list)
    clips: list[bpy.types.MovieClip] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def camera_matrix(camera: VideoCamera, rig_obj: bpy.types.Object | None) -> Matrix:
    """The Blender world matrix of a rig-space camera: Y-up to Z-up, then the rig object's rigid
    transform (Blender cameras look down their -Z with +Y up, as keygrip's do)."""
    to_z_up = np.eye(4)
    to_z_up[:3, :3] = axes.Y_UP_TO_Z_UP
    placed = to_z_up @ camera.camera.camera_to_world
    if rig_obj is not None:
        location, rotation, _ = rig_obj.matrix_world.decompose()
        placed = np.array(Matrix.LocRotScale(location, rotation, None)) @ placed
    return Matrix(placed.tolist())


def find_video(camera: VideoCamera, videos: Sequence[str], only_camera: bool) -> str:
    """The host path of a camera's video: the one of `videos` with its file name, else the only video
    for the only camera (a single-view capture of that video); "" when none is found."""
    existing = [v for v in videos if v and Path(v).is_file()]
    named = [v for v in existing if Path(v).name == camera.video]
    if named:
        return named[0]
    return existing[0] if only_camera and len(existing) == 1 else ""


def _camera_object(name: str, scene: bpy.types.Scene) -> bpy.types.Object:
    """The camera object called `name` that an earlier write-back made (updated in place, so that a
    re-run does not pile up cameras), else a new one in the scene."""
    obj = bpy.data.objects.get(name)
    if obj is not None and obj.type == "CAMERA" and "keygrip" in obj:
        if name not in scene.objects:
            scene.collection.objects.link(obj)
        return obj
    obj = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    scene.collection.objects.link(obj)
    return obj


def _set_lens(data: bpy.types.Camera, lens: Lens) -> None:
    data.type = "PERSP"
    data.sensor_fit = lens.fit
    film_width, film_height = lens.film_back_mm
    data.sensor_width, data.sensor_height = film_width, film_height
    data.lens = lens.focal_mm
    data.shift_x, data.shift_y = lens.shift_x, lens.shift_y


def show_video(data: bpy.types.Camera, video: str, first_video_frame: int, frame_start: int
               ) -> bpy.types.MovieClip:
    """The video as the camera's background (replacing a video it showed), in step with the scene."""
    clip = bpy.data.movieclips.load(video, check_existing=True)
    # Scene frame frame_start shows video frame first_video_frame (both counted as Blender does).
    clip.frame_start = frame_start - first_video_frame
    for old in [b for b in data.background_images if b.source == "MOVIE_CLIP"]:
        data.background_images.remove(old)
    bg = data.background_images.new()
    bg.source = "MOVIE_CLIP"
    bg.clip = clip
    bg.frame_method = "STRETCH"  # the frame and the video have the same size and pixel aspect
    bg.alpha = BACKGROUND_ALPHA
    bg.show_background_image = True
    data.show_background_images = True
    return clip


def set_render_size(scene: bpy.types.Scene, lens: Lens) -> None:
    """The render frame of the camera's video: its size at 100% and its pixel aspect."""
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = lens.width, lens.height, 100
    render.pixel_aspect_x, render.pixel_aspect_y = lens.pixel_aspect_x, lens.pixel_aspect_y


def place_cameras(scene: bpy.types.Scene, cameras: Sequence[VideoCamera], rig_obj: bpy.types.Object | None,
                  videos: Sequence[str], frame_start: int, make_active: bool = True) -> PlacedCameras:
    """One camera object per clip camera, each with its video as background; with make_active, the
    first becomes the scene's camera and sets the render size and pixel aspect."""
    placed = PlacedCameras()
    for k, camera in enumerate(cameras):
        lens = Lens.from_camera(camera.camera)
        obj = _camera_object(f"Keygrip camera {camera.name or k + 1}", scene)
        _set_lens(obj.data, lens)
        obj.matrix_world = camera_matrix(camera, rig_obj)
        video = find_video(camera, videos, len(cameras) == 1)
        if video:
            placed.clips.append(show_video(obj.data, video, camera.frame_offset, frame_start))
        elif camera.video:
            placed.warnings.append(f"camera {camera.name}: its video {camera.video} was not found (put it beside "
                                   "the clip file); the camera has no background")
        if k == 0 and make_active:
            scene.camera = obj
            set_render_size(scene, lens)
        placed.objects.append(obj)
    return placed
