# Table III ablation "decoder-only policy pretraining": only the diffusion decoder (and its action
# embeddings / read-out) comes from the pretrained policy; ResNets and the encoder start fresh.
_base_ = ["./dp_pretrained-clamp_aloha-cpu.py"]

model = dict(
    init_include=(
        "head.decoder.",
        "head.action_in.",
        "head.action_out.",
        "head.query_pos",
        "head.time_embed.",
        "proprio_normalizer.",
        "action_normalizer.",
    )
)
