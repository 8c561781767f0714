// Files and empty folders to remove when the process is interrupted: an evaluation's lock file,
// the report folder it made. A JavaScript signal listener runs only when the event loop gets a
// turn, which a long synchronous edit or kernel can hold off for minutes, so Ctrl-C would seem
// ignored; a C handler removes them at once, then lets the signal take its usual course (Node's
// own handler, which restores the terminal and ends the process with that signal).
//
// The handler does only async-signal-safe things (unlink, rmdir, sigaction, raise) and reads only
// paths that are never freed (a run registers a couple; they are not worth reclaiming, and a
// handler on another thread could still be reading one).
#include "interrupt.h"

#include <atomic>
#include <csignal>
#include <cstring>
#include <string>

#ifndef _WIN32
#include <unistd.h>

namespace {

constexpr int kSlots = 64;
// Each entry: 'f' or 'd' (file or empty folder), then the path, NUL-terminated.
std::atomic<const char*> g_paths[kSlots];
struct sigaction g_previous[2];
bool g_installed[2] = {false, false};
const int kSignals[2] = {SIGINT, SIGTERM};

void OnSignal(int sig) {
  for (char kind : {'f', 'd'}) {  // files first: a folder is removed only once it is empty
    for (auto& slot : g_paths) {
      const char* p = slot.load();
      if (p == nullptr || p[0] != kind) continue;
      if (kind == 'f') unlink(p + 1);
      else rmdir(p + 1);
    }
  }
  // The signal is blocked while this runs: raised again, it reaches the previous handler on return.
  for (int i = 0; i < 2; i++) {
    if (kSignals[i] == sig) sigaction(sig, &g_previous[i], nullptr);
  }
  raise(sig);
}

// Installed once, on the first registration; a signal the process ignores (a background job's
// SIGINT) stays ignored.
void Install() {
  for (int i = 0; i < 2; i++) {
    if (g_installed[i]) continue;
    struct sigaction now;
    if (sigaction(kSignals[i], nullptr, &now) != 0 || now.sa_handler == SIG_IGN) continue;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(kSignals[i], &sa, &g_previous[i]) == 0) g_installed[i] = true;
  }
}

// removeOnInterrupt(kind: 'file' | 'dir', path): a slot number, or -1 when every slot is taken.
Napi::Value RemoveOnInterrupt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "removeOnInterrupt(kind, path)").ThrowAsJavaScriptException();
    return env.Null();
  }
  std::string kind = info[0].As<Napi::String>().Utf8Value();
  std::string entry = (kind == "dir" ? "d" : "f") + info[1].As<Napi::String>().Utf8Value();
  char* copy = new char[entry.size() + 1];
  std::memcpy(copy, entry.c_str(), entry.size() + 1);
  for (int i = 0; i < kSlots; i++) {
    const char* empty = nullptr;
    if (g_paths[i].compare_exchange_strong(empty, copy)) {
      Install();
      return Napi::Number::New(env, i);
    }
  }
  delete[] copy;
  return Napi::Number::New(env, -1);
}

// keepOnInterrupt(slot): the path of that slot is no longer removed.
Napi::Value KeepOnInterrupt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "keepOnInterrupt(slot)").ThrowAsJavaScriptException();
    return env.Null();
  }
  int slot = info[0].As<Napi::Number>().Int32Value();
  if (slot >= 0 && slot < kSlots) g_paths[slot].store(nullptr);
  return env.Undefined();
}

}  // namespace

void InitInterrupt(Napi::Env env, Napi::Object exports) {
  exports.Set("removeOnInterrupt", Napi::Function::New(env, RemoveOnInterrupt, "removeOnInterrupt"));
  exports.Set("keepOnInterrupt", Napi::Function::New(env, KeepOnInterrupt, "keepOnInterrupt"));
}

#else

void InitInterrupt(Napi::Env, Napi::Object) {}

#endif
