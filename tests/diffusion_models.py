"""Tiny random-weight diffusion models for tests (a helper module, not a test module).

Everything is built here from small configs, seeded, and saved to disk; nothing is downloaded. Tests
import it as `from diffusion_models import ...` (tests/ is on sys.path through the rootdir conftest).

- tiny_sd_pipeline(): a StableDiffusionPipeline (UNet with block_out_channels (32, 64), a two-block VAE,
  a two-layer CLIP text encoder, a CLIPTokenizer from a vocabulary written here, DDIM). 64x64 images.
- tiny_sdxl_pipeline(): the SDXL layout in miniature (added text/time conditioning, two text encoders).
- save_diffusers(pipe, folder): save_pretrained (safetensors).
- save_single_file(pipe, file, config_folder): one .safetensors file in the original (LDM) key layout,
  which is what from_single_file reads, plus the config folder it needs offline. diffusers 0.42's
  from_single_file(..., config=FOLDER, local_files_only=True) reads from FOLDER model_index.json, the
  scheduler, tokenizer, text_encoder, unet and vae configs (no weights); without `config` it goes to the
  Hub even with local_files_only=True (it overrides it to fetch configs), so the registry requires one.
- tiny_controlnet(pipe) and save_pickle_checkpoint(): a depth ControlNet folder, and a .ckpt for the
  pickle refusal.
- tiny_depth2img_pipeline(pipe): an SD 2 depth pipeline (UNet with 5 input channels, no depth estimator).
- tiny_inpaint_pipeline(pipe): an SD or SDXL inpainting pipeline (UNet with 9 input channels).
- write_header_only(): a .safetensors file holding just the marker tensors of a family (SDXL, SD3,
  Flux...) for family detection.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

SEED = 1234
IMAGE_SIZE = 64

_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def write_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A CLIP BPE vocabulary (every letter and digit, alone and word-final) and a few merges."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!", ",", "."]
    tokens += list(_LETTERS) + [c + "</w>" for c in _LETTERS]
    merges = ["#version: 0.2", "t h", "th e</w>", "a n", "o n</w>", "e r</w>"]
    tokens += ["th", "the</w>", "an", "on</w>", "er</w>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")
    return folder / "vocab.json", folder / "merges.txt"


def tiny_sd_pipeline(work: Path, *, seed: int = SEED, sd2: bool = False) -> Any:
    """A deterministic tiny StableDiffusionPipeline on the CPU (sd2=True: linear projections and a
    1024-wide context as in SD 2.x, which is how its family is detected)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = write_tokenizer_files(work / "tokenizer-src")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    context = 1024 if sd2 else 32
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=IMAGE_SIZE // 2, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=context, attention_head_dim=8, norm_num_groups=32, use_linear_projection=sd2)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        sample_size=IMAGE_SIZE)
    torch.manual_seed(seed + 2)
    vocab_size = len(json.loads(vocab.read_text()))
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    bos = tokenizer.convert_tokens_to_ids("<|startoftext|>")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=context, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=vocab_size, max_position_embeddings=77, projection_dim=context,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_sdxl_pipeline(work: Path, *, seed: int = SEED) -> Any:
    """A deterministic tiny StableDiffusionXLPipeline on the CPU: the SDXL layout in miniature (a UNet
    with "text_time" added conditioning and linear projections, two CLIP text encoders, the second
    with a projection, whose hidden states are concatenated), with tiny_sd_pipeline's VAE shape."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, merges = write_tokenizer_files(work / "tokenizer-src")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    hidden, time_dim = 32, 8
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=IMAGE_SIZE // 2, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=time_dim, transformer_layers_per_block=(1, 1),
        # the pooled text embedding (the second encoder's projection) and six size/crop numbers
        projection_class_embeddings_input_dim=hidden + 6 * time_dim, cross_attention_dim=2 * hidden,
        norm_num_groups=32)
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        sample_size=IMAGE_SIZE)
    vocab_size = len(json.loads(vocab.read_text()))
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    bos = tokenizer.convert_tokens_to_ids("<|startoftext|>")
    config = CLIPTextConfig(hidden_size=hidden, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                            vocab_size=vocab_size, max_position_embeddings=77, projection_dim=hidden,
                            bos_token_id=bos, eos_token_id=eos, pad_token_id=eos)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(config)
    text_encoder_2 = CLIPTextModelWithProjection(config)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_diffusers(pipe: Any, folder: Path) -> Path:
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


# ---- the original (LDM) layout from_single_file reads ----

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def _unet_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    layers = int(config["layers_per_block"])
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    prefixes: list[tuple[str, str]] = []
    for i in range(len(config["down_block_types"])):
        for j in range(layers):
            prefixes.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.0."))
            prefixes.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{(layers + 1) * i + j + 1}.1."))
        prefixes.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(layers + 1) * (i + 1)}.0.op."))
    for i, kind in enumerate(config["up_block_types"]):
        for j in range(layers + 1):
            prefixes.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{(layers + 1) * i + j}.0."))
            prefixes.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{(layers + 1) * i + j}.1."))
        slot = 2 if kind.startswith("CrossAttn") else 1
        prefixes.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{(layers + 1) * i + layers}.{slot}."))
    prefixes += [("mid_block.resnets.0.", "middle_block.0."), ("mid_block.attentions.0.", "middle_block.1."),
                 ("mid_block.resnets.1.", "middle_block.2.")]
    out = {}
    for key, value in state.items():
        new = key
        for old, ldm in fixed.items():
            if key.startswith(old + "."):
                new = ldm + key[len(old):]
        for old, ldm in prefixes:
            if key.startswith(old):
                rest = key[len(old):]
                if ".resnets." in old:
                    for a, b in _RESNET:
                        rest = rest.replace(a + ".", b + ".") if rest.startswith(a + ".") else rest
                new = ldm + rest
                break
        out["model.diffusion_model." + new] = value
    return out


def _vae_to_ldm(state: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    n = len(config["down_block_types"])
    prefixes: list[tuple[str, str]] = []
    for i in range(n):
        prefixes.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        prefixes.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        prefixes.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."))
        prefixes.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    for part in ("encoder", "decoder"):
        prefixes += [(f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1."),
                     (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2."),
                     (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."),
                     (f"{part}.conv_norm_out.", f"{part}.norm_out.")]
    attn = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    out = {}
    for key, value in state.items():
        new = key
        for old, ldm in prefixes:
            if key.startswith(old):
                rest = key[len(old):].replace("conv_shortcut.", "nin_shortcut.")
                if ".attentions." in old:
                    for a, b in attn.items():
                        if rest.startswith(a):
                            rest = b + rest[len(a):]
                    if rest.endswith("weight") and value.ndim == 2:
                        value = value[:, :, None, None]  # LDM's attention is 1x1 convolutions
                new = ldm + rest
                break
        out["first_stage_model." + new] = value
    return out


def save_single_file(pipe: Any, file: Path, config_folder: Path) -> tuple[Path, Path]:
    """The pipeline as one original-layout .safetensors file, and the config folder (no weights) that
    from_single_file needs offline."""
    from safetensors.torch import save_file

    state = {**_unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config),
             **_vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config),
             **{"cond_stage_model.transformer." + _text_model_key(k): v
                for k, v in pipe.text_encoder.state_dict().items()}}
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(file))
    save_config_folder(pipe, config_folder)
    return file, config_folder


def _text_model_key(key: str) -> str:
    # transformers >= 5.6 flattened CLIPTextModel (no "text_model." prefix); the LDM layout keeps it.
    return key if key.startswith("text_model.") or key.startswith("text_projection") else "text_model." + key


def save_config_folder(pipe: Any, folder: Path) -> Path:
    """A diffusers folder of configs only: what from_single_file(config=...) reads."""
    tmp = folder.with_name(folder.name + "-full")
    pipe.save_pretrained(str(tmp), safe_serialization=True)
    shutil.copytree(tmp, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"), dirs_exist_ok=True)
    shutil.rmtree(tmp)
    return folder


def tiny_controlnet(pipe: Any, folder: Path) -> Path:
    """A ControlNet made from the pipeline's UNet, saved as a diffusers folder (a "depth" one by name)."""
    from diffusers import ControlNetModel

    torch.manual_seed(SEED + 3)
    ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(16, 32)).save_pretrained(str(folder))
    return folder


def tiny_depth2img_pipeline(pipe: Any) -> Any:
    """A StableDiffusionDepth2ImgPipeline (SD 2 depth) sharing the pipeline's VAE, text encoder and tokenizer,
    with its own UNet taking the depth as a fifth input channel. No depth estimator: Keygrip passes the
    host's depth, and loads depth models without one."""
    from diffusers import StableDiffusionDepth2ImgPipeline, UNet2DConditionModel

    torch.manual_seed(SEED + 4)
    unet = UNet2DConditionModel.from_config({**pipe.unet.config, "in_channels": 5})
    depth = StableDiffusionDepth2ImgPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                             unet=unet, scheduler=pipe.scheduler, depth_estimator=None,
                                             feature_extractor=None)
    depth.set_progress_bar_config(disable=True)
    return depth


def save_pickle_checkpoint(pipe: Any, file: Path) -> Path:
    """The UNet's weights as a pickle .ckpt (what the registry refuses unless allowed explicitly)."""
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": _unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config)}, str(file))
    return file


# Marker tensors of each family, in the layouts single files use.
FAMILY_MARKERS: dict[str, list[tuple[str, tuple[int, ...]]]] = {
    "sdxl": [("conditioner.embedders.1.model.ln_final.weight", (4,)),
             ("model.diffusion_model.label_emb.0.0.weight", (4, 4)),
             ("model.diffusion_model.input_blocks.0.0.weight", (4, 4, 3, 3))],
    "sd3": [("model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", (12, 4))],
    "flux": [("double_blocks.0.img_attn.qkv.weight", (12, 4))],
    "depth": [("model.diffusion_model.input_blocks.0.0.weight", (4, 5, 3, 3)),
              ("cond_stage_model.model.ln_final.weight", (4,))],
    "inpaint": [("model.diffusion_model.input_blocks.0.0.weight", (4, 9, 3, 3))],
    "sd2": [("model.diffusion_model.input_blocks.0.0.weight", (4, 4, 3, 3)),
            ("cond_stage_model.model.ln_final.weight", (4,))],
    "controlnet": [("control_model.input_hint_block.0.weight", (4, 3, 3, 3))],
    "unknown": [("some.other.weight", (2,))],
}


def write_header_only(file: Path, family: str) -> Path:
    """A small .safetensors file with the marker tensors of a family (zeros)."""
    from safetensors.torch import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(shape) for k, shape in FAMILY_MARKERS[family]}, str(file))
    return file


def tiny_inpaint_pipeline(pipe: Any) -> Any:
    """An inpainting pipeline sharing the pipeline's VAE, text encoders, tokenizers and scheduler, with its
    own UNet taking 9 input channels (latents, the mask, the masked image's latents):
    StableDiffusionInpaintPipeline, or StableDiffusionXLInpaintPipeline for an SDXL pipeline."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionXLInpaintPipeline, UNet2DConditionModel

    torch.manual_seed(SEED + 5)
    unet = UNet2DConditionModel.from_config({**pipe.unet.config, "in_channels": 9})
    if hasattr(pipe, "text_encoder_2"):
        inpaint = StableDiffusionXLInpaintPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder,
                                                   text_encoder_2=pipe.text_encoder_2, tokenizer=pipe.tokenizer,
                                                   tokenizer_2=pipe.tokenizer_2, unet=unet, scheduler=pipe.scheduler)
    else:
        inpaint = StableDiffusionInpaintPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder,
                                                 tokenizer=pipe.tokenizer, unet=unet, scheduler=pipe.scheduler,
                                                 safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False)
    inpaint.set_progress_bar_config(disable=True)
    return inpaint
