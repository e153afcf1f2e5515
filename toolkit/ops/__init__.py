"""Pure tensor ops: sampling, neighbourhoods, Chamfer, cloud processing, normalisation.

See docs/ops.md for conventions and benchmark figures. This file only re-exports.
"""

# ruff: noqa: F401

# cameras / render exports below
from .cameras import (
    NotRigidError,
    check_rigid,
    depth_to_points,
    intrinsics_from_fovy,
    invert_rigid,
    look_at,
    mujoco_cam_to_world,
    mujoco_intrinsics,
    project_points,
    project_to_image,
    unproject_depth,
)
from .chamfer import chamfer_distance, nearest_neighbor_indices
from .neighbors import ball_query, group_points, knn, pairwise_distance, sample_and_group
from .normalize import center_and_scale, workspace_denormalize, workspace_normalize
from .pointcloud import (
    EmptyPointCloudError,
    as_bounds,
    bounds_mask,
    crop_to_bounds,
    drop_nonfinite,
    merge_clouds,
    process_cloud,
    subsample_or_pad,
    voxel_downsample,
)
from .render import (
    VirtualCameras,
    clamp_cameras,
    clamp_fixed_cameras,
    dome_cameras,
    orthogonal_cameras,
    patch_coordinates,
    render_views,
    tile_views,
    untile_views,
    valid_pixels,
    wrist_cameras,
)
from .sampling import available_fps_backends, downsample_points, farthest_point_sample
