// Precompiled header for the torch-heavy parts of the core library (model, train, infer, serve).
#pragma once
#include <torch/nn.h>
#include <torch/optim.h>
#include <torch/serialize.h>
#include <torch/types.h>
