"""ALOHA pretraining tasks (``family = "pretrain"``): other objects, targets and arm usages
than CLAMP's fine-tuning tasks. Modules here are imported by :mod:`toolkit.envs.aloha.tasks`.

==========================  ==========================================  =================
task                        what                                        module
==========================  ==========================================  =================
lift_cube                   pick the cube up (either arm)               lift_cube
push_cube                   push the cube onto a target square          push_cube
stack_cube                  stack the cube on the block                 stack_cube
banana_in_bowl              banana into the fruit bowl                  containers
mug_in_bowl                 mug upright into the fruit bowl             containers
scissors_in_bin             scissors into the bin, turned along it      containers
thumb_drive_in_container    thumb drive into the container, diagonal    containers
top_drawer_open             open the TOP drawer                         drawers
drawer_close                close whichever drawer is open              drawers
handover_bar                pick the bar up, hand it to the other arm   handover
peg_insertion               both arms: peg into socket in mid-air       peg_insertion
==========================  ==========================================  =================

``_objects`` registers the new object builders (cube, block, bar, fruit_bowl, bin, peg,
socket, target) into :data:`toolkit.envs.aloha.objects.BUILDERS`; ``_common`` holds the
shared layout helpers and expert primitives (pick, carry, place, two arms side by side).
"""
