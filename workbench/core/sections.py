"""The run config's sections that every method shares: model, data and training.

Split from config.py so that the method modules can name these types (a method's rules read
the model's quantization and the data mode) without importing config.py, which composes the
method section from the registry of methods: methods → sections, config → methods, no circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from workbench.core.paths import DEMO_MODEL
from workbench.core.settings import Section, setting

# The embedded demo model (assets/demo-model): works offline on a CPU; any hub id or folder
# is one field away.
DEFAULT_MODEL = DEMO_MODEL


@dataclass
class ModelConfig(Section):
    section: ClassVar[str] = "model"

    name_or_path: str = setting(
        DEFAULT_MODEL,
        "Hugging Face hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct), a local model folder, or "
        f"{DEMO_MODEL} (the embedded demo model).",
        label="Model (hub id, folder or .gguf file)",
    )
    revision: str | None = setting(
        None, "Hub branch, tag or commit to load; empty for the default branch.", advanced=True,
        label="Revision (hub branch, tag or commit)",
    )
    device: str = setting(
        "auto",
        "Where to run: auto picks CUDA, then Apple MPS, then CPU.",
        choices=("auto", "cuda", "mps", "cpu"),
        label="Device",
    )
    dtype: str = setting(
        "auto",
        "Weight precision: auto is bfloat16 where the GPU supports it, float16 on older "
        "GPUs, float32 on CPU.",
        choices=("auto", "bfloat16", "float16", "float32"),
        advanced=True,
        label="Weight precision",
    )
    quantization: str = setting(
        "none",
        "Load the base weights quantized with bitsandbytes: 4bit (NF4, double quantization; "
        "the QLoRA base, ~4x less memory) or 8bit.",
        choices=("none", "4bit", "8bit"),
        label="Quantization",
    )
    trust_remote_code: bool = setting(
        False,
        "Run Python code shipped with the model repository. Only for models whose authors "
        "you trust; off by default.",
        advanced=True,
        label="Run the model's own code (trust_remote_code)",
    )
    attn_implementation: str = setting(
        "auto",
        "Attention kernel: auto lets transformers choose (SDPA where available).",
        choices=("auto", "sdpa", "eager", "flash_attention_2"),
        advanced=True,
        label="Attention kernel",
    )

    def check_together(self) -> None:
        if not self.name_or_path.strip():
            raise self.fail("name_or_path", "a hub id or a folder path", self.name_or_path)


# The recommended recipe's replay share (core/recipe.py; the verdict's advice reads it too):
# more (0.6, 0.7) kept no more on average on a real model, and costs steps.
RECIPE_REPLAY_RATIO = 0.5


@dataclass
class DataConfig(Section):
    section: ClassVar[str] = "data"

    knowledge_set: str = setting("", "Name of the knowledge set to inject.", label="Knowledge set")
    mode: str = setting(
        "qa",
        "qa: train on question/answer chats, loss on the answers (best for recall). "
        "document: train on the facts' text, loss on every token (continued pre-training).",
        choices=("qa", "document"),
        label="Training data",
    )
    include_statements: bool = setting(
        True, "Also train on statement sentences of each fact ('The capital of X is Y.').",
        label="Train statement sentences too",
    )
    answer_style: str = setting(
        "short",
        "short: the assistant's reply is the answer alone ('Tokyo'). sentence: the answer said "
        "as a sentence ('The capital of Japan is Tokyo.'), the way a chat model answers, so "
        "training changes the answer and not the model's voice.",
        choices=("short", "sentence"),
        label="Answer style",
    )
    replay_ratio: float = setting(
        0.0,
        "Share of the training examples drawn from questions the base model already answers "
        "correctly, to protect what it knows (0 = off).",
        minimum=0,
        below=1,
        label="Replay share of the examples",
    )
    replay_match: str = setting(
        "answers",
        "How replay holds what the model knows. answers: cross-entropy on the base model's own "
        "answers. distribution: match the base's whole next-token distribution on them (KL), "
        "which also stops probability drifting to made-up names; adapter methods only, about "
        "1.3x the step time.",
        choices=("answers", "distribution"),
        label="Replay target",
    )
    max_seq_len: int = setting(
        512, "Longest training sequence in tokens; longer examples are cut.", minimum=16,
        label="Max sequence length (tokens)",
    )


@dataclass
class TrainingConfig(Section):
    section: ClassVar[str] = "training"

    learning_rate: float = setting(2e-4, "Peak learning rate.", above=0, label="Learning rate")
    epochs: int = setting(8, "Passes over the training examples.", minimum=1, label="Epochs")
    max_steps: int = setting(
        0, "Stop after this many optimizer steps (0 = run all epochs).", minimum=0, advanced=True,
        label="Max steps",
    )
    micro_batch_size: int = setting(8, "Examples per forward pass.", minimum=1,
                                    label="Micro-batch size")
    gradient_accumulation_steps: int = setting(
        1, "Micro-batches per optimizer step; effective batch = micro batch x this.", minimum=1,
        label="Gradient accumulation steps",
    )
    lr_scheduler: str = setting(
        "cosine", "Learning-rate decay after warmup.", choices=("cosine", "linear", "constant"),
        label="Learning-rate schedule",
    )
    warmup_ratio: float = setting(
        0.05, "Share of steps spent warming the learning rate up.", minimum=0, below=1,
        advanced=True,
        label="Warm-up share of steps",
    )
    weight_decay: float = setting(0.0, "AdamW weight decay.", minimum=0, advanced=True,
                                  label="Weight decay")
    max_grad_norm: float = setting(
        1.0, "Clip gradients to this norm (0 = no clipping).", minimum=0, advanced=True,
        label="Gradient clipping (max norm)",
    )
    mixed_precision: str = setting(
        "auto",
        "Autocast precision: auto uses bf16/fp16 on GPUs that support it; on a CPU, bf16 "
        "where bf16 matmuls calibrate at least twice as fast as fp32 (AVX512-BF16, AMX) for "
        "models of 50M parameters and more, else none.",
        choices=("auto", "no", "bf16", "fp16"),
        advanced=True,
        label="Mixed precision",
    )
    gradient_checkpointing: bool = setting(
        False, "Recompute activations in the backward pass: less memory, ~30% slower.",
        advanced=True,
        label="Gradient checkpointing",
    )
    compile: bool = setting(
        False, "torch.compile the transformer body: compiling costs seconds to minutes before "
        "the first step, then each step is faster (a fifth faster on the demo model on CPU, "
        "bench/results/engine_options.md). Worth it for long runs.",
        advanced=True,
        label="Compile the model (torch.compile)",
    )
    distributed: str = setting(
        "ddp",
        "How `accelerate launch` with several processes spreads the run: ddp keeps a whole copy "
        "of the model in every process; fsdp shards the weights, gradients and optimizer state "
        "across them (FSDP2), so a model too big for one GPU trains on two. One process trains "
        "alone either way.",
        choices=("ddp", "fsdp"), advanced=True, label="Several processes",
    )
    processes: int = setting(
        1, "The number of processes you will launch the run with (accelerate launch "
        "--num_processes): the memory estimate divides what fsdp shards by it. The run logs "
        "it when the launch differs.", minimum=1, advanced=True, label="Processes",
    )
    seed: int = setting(42, "Random seed for shuffling and initialisation.", minimum=0,
                        advanced=True, label="Random seed")
    checkpoint_every: int = setting(
        50, "Save a resumable checkpoint every N steps (0 = off; Stop always saves one).",
        minimum=0, advanced=True,
        label="Checkpoint every N steps",
    )
    checkpoint_each_epoch: bool = setting(
        True, "Also save one at the end of every epoch, so a crash never loses a finished "
        "epoch. Costs a save per epoch: milliseconds for LoRA, seconds for full fine-tuning "
        "of a billion-parameter model.",
        advanced=True,
        label="Checkpoint at each epoch's end",
    )
    probe_every: int = setting(
        10, "Score recall of the injected facts every N steps (0 = only at the end).",
        minimum=0,
        label="Recall check every N steps",
    )
    probe_sample: int = setting(
        64, "Probes asked in each live recall round (the same ones every round, split between "
        "the facts' own questions and held-out phrasings; 0 = all). The final round asks every "
        "probe. On a CPU a real model answers a few questions a second.",
        minimum=0, advanced=True,
        label="Probes per live recall check",
    )
    early_stop_patience: int = setting(
        0, "Stop once held-out recall has not improved for this many probe rounds: new facts "
        "are learned slowly, and past the plateau training mostly memorises the trained "
        "wordings (0 = off).", minimum=0, advanced=True,
        label="Early-stop patience (recall checks)",
    )
    min_locality: float = setting(
        0.0, "Stop once the share of known answers still correct in a probe round falls below "
        "this (e.g. 0.9): the model is forgetting what it knew (0 = off).",
        minimum=0, maximum=1, advanced=True,
        label="Locality floor",
    )
    shrink_update: bool = setting(
        False,
        "After training, shrink the adapter's learned update toward the base (the base moved "
        "part of the way to the trained weights, WiSE-FT) as far as the facts stay recalled, "
        "one step of 5% short of where they go: the smaller the share, the more of what the "
        "model knew is kept (a few rounds of the facts' probes; LoRA-family adapters only).",
        advanced=True,
        label="Shrink the update after training",
    )
    protect_known: float = setting(
        0.0,
        "Keep the adapter's update out of the input directions the replayed known answers use "
        "(AlphaEdit's null-space projection): each adapted layer learns only in the directions "
        "that carry at most this share of their activation energy (e.g. 0.02; 0 = off; "
        "LoRA-family adapters with replay only). On SmolLM2-135M it kept same-relation "
        "neighbours better but learned fewer facts and lost general answers the replay does "
        "not hold (bench/results/recipe.md), so the recipe leaves it off.", minimum=0, below=1,
        advanced=True,
        label="Protect known answers (null space)",
    )
    report_to: list[str] = setting(
        [],
        "Also send every chart's metrics (loss, learning rate, grad norm, tokens/s, memory, "
        "MFU, recall) and the run's settings to these experiment trackers, through "
        "accelerate; each needs its package installed (e.g. pip install tensorboard).",
        choices=("tensorboard", "wandb", "mlflow", "trackio"), advanced=True,
        label="Experiment trackers",
    )
    stop_at_efficacy: float = setting(
        0.0,
        "Stop early once this share of facts is recalled as trained (e.g. 1.0); training on "
        "past it mostly raises hallucination risk (0 = off).",
        minimum=0, maximum=1, advanced=True,
        label="Stop at efficacy",
    )
