// The guarded arena of the emulated CUDA device (see core/device_memory_guard.h).
//
// Layout: one PROT_NONE reservation of kArenaBytes (MAP_NORESERVE: address space only). Blocks
// are bump-allocated from its start in 256-byte steps and recycled through exact-size free lists
// (the caching allocator above rounds sizes, so exact sizes repeat). The used span [base, top),
// rounded up to pages, is what the scopes switch between PROT_NONE and PROT_READ|PROT_WRITE.
#include "core/device_memory_guard.h"

#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace moeseg {

namespace {

constexpr size_t kArenaBytes = size_t{64} << 30;   // address space only; more than this machine's RAM
constexpr size_t kAlign = 256;                       // cudaMalloc's alignment

struct Block {
  size_t bytes = 0;
  std::string label;
};

struct Arena {
  std::mutex mu;
  char* base = nullptr;
  size_t top = 0;          // bytes handed out from base (bump pointer)
  size_t mapped_top = 0;   // top rounded up to pages: the span the scopes switch
  int scopes = 0;          // live DeviceAccessScopes, all threads
  std::map<uintptr_t, Block> live;
  std::map<size_t, std::vector<char*>> free_lists;
  struct sigaction previous {};
  bool handler_installed = false;
};

Arena& arena() {
  static Arena* a = new Arena();   // leaked: tensors may be freed during static destruction
  return *a;
}

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

bool env_guard_enabled() {
  const char* v = std::getenv("MOESEG_CUDA_GUARD");
  return !(v && std::strcmp(v, "0") == 0);
}

void protect_span(Arena& a, size_t from, size_t to, int prot) {
  if (to <= from) return;
  if (mprotect(a.base + from, to - from, prot) != 0)
    MOESEG_FAIL("emulated cuda: mprotect of the device arena failed: ", std::strerror(errno));
}

void write_str(const char* s) {
  ssize_t ignored = write(2, s, std::strlen(s));
  (void)ignored;
}

void on_segv(int sig, siginfo_t* info, void* context);

// (Re-)installs the handler when someone (a test framework, say) replaced it since; the one found
// there becomes the handler that faults outside the arena are passed on to.
void ensure_handler(Arena& a) {
  struct sigaction current {};
  sigaction(SIGSEGV, nullptr, &current);
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_segv) return;
  struct sigaction mine {};
  mine.sa_sigaction = on_segv;
  mine.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&mine.sa_mask);
  sigaction(SIGSEGV, &mine, &a.previous);
  a.handler_installed = true;
}

void pass_on(Arena& a, int sig, siginfo_t* info, void* context) {
  const struct sigaction& prev = a.previous;
  if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
    prev.sa_sigaction(sig, info, context);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler) {
    prev.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);   // returning re-runs the faulting instruction, which now kills
}

void on_segv(int sig, siginfo_t* info, void* context) {
  Arena& a = arena();
  const char* addr = static_cast<const char*>(info->si_addr);
  if (!a.base || addr < a.base || addr >= a.base + kArenaBytes) {
    pass_on(a, sig, info, context);
    return;
  }
  char line[512];
  std::snprintf(line, sizeof line,
                "\nmoeseg: host code touched emulated CUDA device memory at %p outside any kernel, device copy "
                "or device fill. On a GPU this is a crash: move the data with Tensor::to(cpu) or do the work in "
                "a kernel.\n",
                static_cast<const void*>(addr));
  write_str(line);
  // The allocation it falls in. try_lock: the faulting thread might hold the lock (it does not in
  // any path of this file, but a handler must not wait for itself).
  if (a.mu.try_lock()) {
    const uintptr_t x = reinterpret_cast<uintptr_t>(addr);
    auto it = a.live.upper_bound(x);
    if (it != a.live.begin()) {
      --it;
      if (x < it->first + it->second.bytes) {
        std::snprintf(line, sizeof line, "  byte %zu of a live %zu-byte device allocation%s%s\n",
                      static_cast<size_t>(x - it->first), it->second.bytes,
                      it->second.label.empty() ? "" : ": ", it->second.label.c_str());
        write_str(line);
      } else {
        write_str("  (not inside a live allocation: freed memory or past the end of one)\n");
      }
    }
    a.mu.unlock();
  }
  write_str("  backtrace (addr2line -e <binary> -f -C <offset> names the frames):\n");
  void* frames[48];
  const int n = backtrace(frames, 48);
  backtrace_symbols_fd(frames, n, 2);
  signal(SIGABRT, SIG_DFL);
  std::abort();
}

void* plain_alloc(size_t nbytes) {
  void* p = std::aligned_alloc(kAlign, (nbytes + kAlign - 1) / kAlign * kAlign);
  MOESEG_CHECK(p != nullptr, "emulated cuda: out of host memory allocating ", nbytes, " bytes");
  return p;
}

}  // namespace

bool device_memory_guard_enabled() {
  static const bool on = env_guard_enabled();
  return on;
}

void* guarded_device_alloc(size_t nbytes) {
  if (!device_memory_guard_enabled()) return plain_alloc(nbytes);
  const size_t bytes = (std::max<size_t>(nbytes, 1) + kAlign - 1) / kAlign * kAlign;
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mu);
  if (!a.base) {
    void* m = mmap(nullptr, kArenaBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    MOESEG_CHECK(m != MAP_FAILED, "emulated cuda: could not reserve the guarded device arena (",
                 kArenaBytes >> 30, " GiB of address space): ", std::strerror(errno),
                 "; MOESEG_CUDA_GUARD=0 runs without the guard");
    a.base = static_cast<char*>(m);
  }
  ensure_handler(a);
  char* p = nullptr;
  auto fl = a.free_lists.find(bytes);
  if (fl != a.free_lists.end() && !fl->second.empty()) {
    p = fl->second.back();
    fl->second.pop_back();
  } else {
    MOESEG_CHECK(a.top + bytes <= kArenaBytes, "emulated cuda: out of device memory allocating ", nbytes,
                 " bytes (the guarded arena holds ", kArenaBytes >> 30, " GiB)");
    p = a.base + a.top;
    a.top += bytes;
    const size_t page = page_size();
    const size_t new_mapped = (a.top + page - 1) / page * page;
    if (new_mapped > a.mapped_top) {
      if (a.scopes > 0) protect_span(a, a.mapped_top, new_mapped, PROT_READ | PROT_WRITE);
      a.mapped_top = new_mapped;
    }
  }
  a.live[reinterpret_cast<uintptr_t>(p)] = Block{bytes, {}};
  return p;
}

void guarded_device_free(void* p) {
  if (!p) return;
  if (!device_memory_guard_enabled()) {
    std::free(p);
    return;
  }
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(reinterpret_cast<uintptr_t>(p));
  MOESEG_CHECK(it != a.live.end(), "emulated cuda: free of ", p, ", which is not a live device allocation");
  a.free_lists[it->second.bytes].push_back(static_cast<char*>(p));
  a.live.erase(it);
}

bool is_guarded_device_pointer(const void* p) {
  Arena& a = arena();
  const char* c = static_cast<const char*>(p);
  return a.base && c >= a.base && c < a.base + kArenaBytes;
}

void label_guarded_device_memory(const void* p, const std::string& label) {
  if (!device_memory_guard_enabled() || !is_guarded_device_pointer(p)) return;
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(reinterpret_cast<uintptr_t>(p));
  if (it != a.live.end()) it->second.label = label;
}

void device_access_begin() {
  if (!device_memory_guard_enabled()) return;
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mu);
  if (a.scopes++ == 0 && a.base) protect_span(a, 0, a.mapped_top, PROT_READ | PROT_WRITE);
}

void device_access_end() {
  if (!device_memory_guard_enabled()) return;
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mu);
  if (--a.scopes == 0 && a.base) {
    protect_span(a, 0, a.mapped_top, PROT_NONE);
    ensure_handler(a);
  }
}

DeviceAccessScope::DeviceAccessScope() { device_access_begin(); }
DeviceAccessScope::~DeviceAccessScope() { device_access_end(); }

}  // namespace moeseg
