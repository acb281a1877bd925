#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): a handful of
small valid inputs per reader, so that fuzzing starts from files that get past the first checks.
Run from anywhere:  python3 tests/fuzz/make_corpus.py   (JPEG seeds need a C compiler and the
stb headers of scripts/setup.sh). The files are committed; CI never regenerates them."""
import json, os, struct, subprocess, tempfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


# ---- safetensors ------------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, blob = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


put("safetensors", "two_tensors", safetensors({"w": ("F32", [2, 3], struct.pack("<6f", *range(6))),
                                               "idx": ("I64", [2], struct.pack("<2q", 1, -1))}))
put("safetensors", "empty_header", safetensors({}))
put("safetensors", "metadata_u8_scalar", safetensors({"s": ("U8", [], b"\x07")}, {"epoch": "3", "format": "pt"}))
put("safetensors", "half_types", safetensors({"a": ("F16", [2], b"\x00\x3c\x00\xc0"), "b": ("BF16", [1, 1], b"\x80\x3f"),
                                              "c": ("F64", [1], struct.pack("<d", 0.5)), "d": ("I32", [0, 4], b"")}))
put("safetensors", "one_f32", safetensors({"x": ("F32", [1, 1, 2, 2], struct.pack("<4f", 1, 2, 3, 4))}))


# ---- npy --------------------------------------------------------------------------------------
def npy(descr, shape, raw, version=1, dq=False):
    shp = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    q = '"' if dq else "'"
    h = "{" + f"{q}descr{q}: {q}{descr}{q}, {q}fortran_order{q}: False, {q}shape{q}: {shp}, " + "}"
    pre = 10 if version == 1 else 12
    h += " " * ((64 - (pre + len(h) + 1) % 64) % 64) + "\n"
    n = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + n + h.encode() + raw


put("npy", "f4_2x3", npy("<f4", [2, 3], struct.pack("<6f", *range(6))))
put("npy", "u1_5", npy("|u1", [5], bytes(range(5))))
put("npy", "i8_scalar_v2", npy("<i8", [], struct.pack("<q", -3), version=2))
put("npy", "f8_empty_v3", npy("<f8", [0], b"", version=3, dq=True))
put("npy", "i4_2x1x2", npy("<i4", [2, 1, 2], struct.pack("<4i", 1, 2, 3, 4)))

# ---- experiment configs (JSON, then optionally NUL + one --set override) ------------------------
frrn = {"model": "frrn_a", "num_classes": 38, "width": 0.25}
put("experiment_config", "minimal", json.dumps({"name": "m", "model": frrn}))
put("experiment_config", "full", json.dumps({
    "name": "full", "model": frrn, "out": "runs/full", "comment": "seed",
    "data": {"dataset": "a2d2", "root": "data/synthetic", "subset": "highway,urban", "val_subset": "highway",
             "test_subsets": ["highway", "urban"], "height": 48, "width": 64, "preset": "resize", "max_train": 4,
             "max_val": 2, "max_test": 2, "workers": 1, "camvid_dusk_holdout": 20, "unknown_colour_to_ignore": False},
    "train": {"epochs": 2, "batch": 2, "optimizer": {"type": "adam", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4,
                                                     "betas": [0.9, 0.99], "nesterov": False},
              "schedule": {"kind": "cosine", "per": "epoch", "power": 0.9, "eta_min": 1e-6, "step_size": 1, "gamma": 0.1,
                           "warmup_steps": 0, "warmup_factor": 0.001},
              "grad_clip": 0, "val_every": 1, "patience": 3, "early_stopping": "loss", "seed": 304, "shuffle": True,
              "ignore_index": 255, "class_weights": [1.0, 2.0], "cache_expert_outputs": False,
              "max_steps_per_epoch": 0, "log_every": 1, "device": "cpu"}}, indent=1))
put("experiment_config", "ensemble_epochs0", json.dumps({
    "name": "ens", "model": {"type": "ensemble", "num_classes": 38, "mode": "max", "experts": ["frrn_a", "frrn_a"]},
    "data": {"dataset": "camvid", "root": "camvid"}, "train": {"epochs": 0}}))
put("experiment_config", "with_override", json.dumps({"name": "o", "model": "frrn_b", "train": {"epochs": 1}}) +
    "\0train.optimizer.lr=0.5")
put("experiment_config", "override_string", json.dumps({"model": frrn, "data": {"subset": "all"}}) + "\0data.subset=urban")

# ---- model registry configs -------------------------------------------------------------------
thin = {"model": "frrn_a", "width": 0.0625}
put("model_registry", "frrn", json.dumps({"model": "frrn_a", "num_classes": 5, "width": 0.0625, "seed": 1}))
put("model_registry", "deeplab", json.dumps({"model": "deeplabv3plus_resnet18", "num_classes": 3, "width": 0.0625,
                                             "output_stride": 8}))
put("model_registry", "moe", json.dumps({"type": "moe", "num_classes": 4, "experts": [thin, thin], "gate": "classwise",
                                         "with_conv": True, "tap": "frrnlayer4", "input_size": [32, 48],
                                         "pool_grid": [2, 3], "fc_features": 8, "seed": 2}))
put("model_registry", "ensemble", json.dumps({"type": "ensemble", "num_classes": 3, "mode": "mean",
                                              "experts": ["frrn_b", {"model": "frrn_a", "width": 0.0625, "seed": 3}]}))
put("model_registry", "moe_unused_expert", json.dumps({"type": "moe", "num_classes": 2, "experts": [thin, thin],
                                                       "reference_unused_expert": True, "input_size": [16, 16]}))


# ---- images (byte 0: file name index, byte 1: channels index; see fuzz_image.cpp) ---------------
def png(w, h, colour, depth, rows, interlace=0, extra=b""):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


rgb_rows = b"".join(bytes([0]) + bytes((x * 40 + y * 9 + c * 77) % 256 for x in range(5) for c in range(3)) for y in range(4))
put("image", "png_rgb_5x4", b"\x00\x00" + png(5, 4, 2, 8, rgb_rows))
gray_rows = b"".join(bytes([1]) + bytes((x * 31) % 256 for x in range(8)) for y in range(8))
put("image", "png_gray_8x8", b"\x00\x01" + png(8, 8, 0, 8, gray_rows))
plte = struct.pack(">I", 6) + b"PLTE" + b"\xff\x00\x00\x00\xff\x00"
plte += struct.pack(">I", zlib.crc32(b"PLTE\xff\x00\x00\x00\xff\x00") & 0xFFFFFFFF)
put("image", "png_palette_2bit_3x2", b"\x00\x02" + png(3, 2, 3, 2, b"\x00\x14\x00\x04", extra=plte))
# Adam7-interlaced 3x3 gray: passes 1 (1x1), 4 (1x1: x=2,y=0), 5 (2x1: y=2), 6 (1x2: x=1), 7 (3x1: y=1)
put("image", "png_interlaced_3x3", b"\x00\x00" + png(3, 3, 0, 8, b"\x00\x10" + b"\x00\x20" + b"\x00\x30\x40" +
                                                    b"\x00\x50\x00\x60" + b"\x00\x70\x80\x90", interlace=1))
put("image", "ppm_p6_3x2", b"\x04\x03" + b"P6\n# seed\n3 2\n255\n" + bytes(range(18)))
put("image", "pgm_p5_maxval15_2x2", b"\x05\x00" + b"P5 2 2 15\n" + bytes(range(4)))


def bmp24(w, h):
    stride = (w * 3 + 3) // 4 * 4
    pix = b"".join(bytes((x * 50 + y * 20 + c) % 256 for x in range(w) for c in range(3)) + b"\0" * (stride - w * 3)
                   for y in range(h))
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pix), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib) + len(pix), 0, 0, 14 + len(dib)) + dib + pix


put("image", "bmp24_3x2", b"\x03\x00" + bmp24(3, 2))
c_src = r'''
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
int main(int argc, char** argv) {
  unsigned char px[6 * 5 * 3];
  for (int i = 0; i < 6 * 5 * 3; ++i) px[i] = (unsigned char)(i * 13);
  stbi_write_jpg(argv[1], 6, 5, 3, px, 90);
  stbi_write_jpg(argv[2], 6, 5, 1, px, 50);
  return 0;
}
'''
with tempfile.TemporaryDirectory() as t:
    with open(os.path.join(t, "j.c"), "w") as f:
        f.write(c_src)
    if subprocess.call(["cc", "-O1", "-o", os.path.join(t, "j"), os.path.join(t, "j.c"), "-lm"]) == 0:
        subprocess.check_call([os.path.join(t, "j"), os.path.join(t, "a.jpg"), os.path.join(t, "b.jpg")])
        put("image", "jpeg_rgb_6x5", b"\x01\x00" + open(os.path.join(t, "a.jpg"), "rb").read())
        put("image", "jpeg_gray_6x5", b"\x02\x02" + open(os.path.join(t, "b.jpg"), "rb").read())
    else:
        print("no C compiler: JPEG seeds not (re)written")

# ---- A2D2 split files and CamVid list files ----------------------------------------------------
put("a2d2_split", "two_lines", "highway/train_val/GT/20181108091945_label_frontcenter_000001234.png\n"
                               "20181016125231_label_sideleft_000000003.png\n")
put("a2d2_split", "comments_and_blanks", "# A2D2 split\n\n  20181108084007_label_rearcenter_000000001.png  \r\n")
put("a2d2_split", "backslashes", "urban\\GT\\20181204154421_label_frontright_000012345.png\n")
put("a2d2_split", "one", "20181108084007_label_frontleft_000000002.png")
put("camvid_list", "segnet_prefix", "/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png\n")
put("camvid_list", "relative", "train/Seq05VD_f00000.png trainannot/Seq05VD_f00000.png\n\n")
put("camvid_list", "two_lines", "a.png b.png\ntrain/0001TP_006690.png trainannot/0001TP_006690.png\n")
put("camvid_list", "tabs", "a.png\tb.png\r\n")
print("seed corpora written under", os.path.join(HERE, "corpus"))
