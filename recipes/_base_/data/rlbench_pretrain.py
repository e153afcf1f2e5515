# RLBench part of CLAR's pretraining data (Sec. III-C): nine tasks, dense frames, front camera
# (RGB for the image teacher, depth -> world cloud):
#   toolkit convert rlbench RLBENCH_DATA/train --out data/rlbench_pretrain --split pretrain \
#       --tasks close_jar insert_onto_square_peg move_hanger open_drawer push_buttons \
#               put_groceries_in_cupboard stack_blocks stack_cups turn_oven_on
# CLAR co-trains with RH20T, which the toolkit does not read: these recipes pretrain on RLBench
# alone.
rlbench_pretrain_root = "data/rlbench_pretrain"
rlbench_pretrain_tasks = [
    "close_jar", "insert_onto_square_peg", "move_hanger", "open_drawer", "push_buttons",
    "put_groceries_in_cupboard", "stack_blocks", "stack_cups", "turn_oven_on",
]  # fmt: skip
rlbench_camera = "front"
rlbench_bounds = [[-1.5, -1.5, 0.76], [1.5, 1.5, 3.0]]
