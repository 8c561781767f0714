// Dense linear algebra (LAPACK via OpenBLAS) exposed to the TS layer.
#pragma once
#include <napi.h>

// Registers the linalg functions on `exports`. Without AMEND_OPENBLAS this
// registers nothing and the TS layer falls back to its pure-JS reference.
void InitLinalg(Napi::Env env, Napi::Object exports);
