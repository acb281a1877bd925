// attack_bench.h — `moeseg bench attack`: the time of one PGD step (reference variant: forward,
// CE, ∇δ, Adam on δ, clamp; eval mode) next to one training step of the same model (forward,
// CE, backward, Adam on the trainable parameters; train mode), and their ratio (issue 11 asks
// for at most 1.2x). Models: FRRN-A (an expert) and a simple-gate MoE of two FRRN-A experts
// (frozen experts, so its training step trains the gate only).
// Options: --batch B (8) --height H (64) --width W (96) --width-mult M (0.125) --reps R (3)
//          --threads N --steps K (10, PGD steps per timed run; the step time is the run / K)
#pragma once

int moeseg_bench_attack(int argc, char** argv);
