# RLBench data of CLAR's protocol, converted from stored RLBench demos (no CoppeliaSim needed):
#   toolkit convert rlbench RLBENCH_DATA/train --out data/rlbench_clar --keyframes --val 20 \
#       --max-episodes 120 --tasks close_box close_laptop_lid water_plants toilet_seat_down
# -> data/rlbench_clar/<task>/{train (100 demos), val (20 demos)}/ep_<seed>.hdf5: front camera,
# keyframe waypoints, 1024-point world clouds cropped to Lift3D's RLBench box, proprio = gripper
# pose + open (8), action = next keyframe's gripper pose + open (8). See docs/suites/rlbench.md.
rlbench_data_root = "data/rlbench_clar"
rlbench_tasks = ["close_box", "close_laptop_lid", "water_plants", "toilet_seat_down"]
rlbench_camera = "front"
rlbench_num_points = 1024
# Lift3D's RLBench crop (toolkit.data.rlbench.observations.LIFT3D_BOUNDS), also the env's default
rlbench_bounds = [[-1.5, -1.5, 0.76], [1.5, 1.5, 3.0]]
rlbench_train_episodes = 100  # 100 train / 20 val demos per task (specs.md)
