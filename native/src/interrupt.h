// Paths removed when the process is interrupted (SIGINT, SIGTERM), exposed to the TS layer.
#pragma once
#include <napi.h>

// Registers removeOnInterrupt / keepOnInterrupt on `exports`.
void InitInterrupt(Napi::Env env, Napi::Object exports);
