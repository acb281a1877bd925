// CUDA-on-CPU runtime: thread pool, block scheduling, __syncthreads, warp exchanges, memory shims.
// See runtime.h for the execution model; tests in tests/cuda_on_cpu/.
//
// Synchronisation design (the part ThreadSanitizer has to see correctly):
//  * Block-wide state is one 64-bit word of counters (threads waiting at __syncthreads, threads
//    that returned from the kernel, threads asleep), changed only by acq_rel read-modify-writes,
//    so every arrival sees one consistent snapshot and there is no mutex convoy among hundreds
//    of threads. The last arriver of a barrier has acquired every earlier arrival (release
//    sequence) and then bumps a generation word with a release; waiters leave after an acquire
//    load of it. That is a full happens-before barrier and nothing more: two threads that touch
//    the same shared word with no barrier between them get no edge through the runtime, so TSAN
//    reports the race (tests/cuda_on_cpu/planted/ proves it).
//  * Each warp has a small mutex-guarded exchange (inputs, sources, outputs, per-lane epochs).
//    The last lane named in the mask computes everyone's result and releases them.
//  * Waiting is a Linux futex on the generation word, with no spinning (hundreds of threads on a
//    few cores: a spinner only delays the thread it waits for). One word per barrier, per warp,
//    per block end; each release is one FUTEX_WAKE.
//  * The counters also say when every thread is asleep or gone: nothing can release anyone, a
//    hang on a GPU. The thread whose update produced that state fails the launch with a
//    description. Releasers un-count the sleepers before waking them, so this never fires early.
//  * Errors make the launch fail: the first message is kept, every waiter is woken, and threads
//    inside a primitive unwind their kernel frame with an internal exception.
//  * Blocks run one after another on the same threads; the end-of-block handoff is the same kind
//    of barrier, so block b's shared-memory accesses happen before block b+1's (this is what makes
//    `__shared__` == `static` race-free), and dynamic shared memory is re-poisoned between blocks.
//    The price: races *between* blocks of one grid are ordered by that handoff, so TSAN cannot
//    see them (a GPU runs blocks concurrently); inter-block bugs need the GPU or a review.
#include "kernels/cuda_on_cpu/runtime.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace moeseg::cuda_on_cpu {

// ---- device-work hooks (set_device_work_hooks) -------------------------------------------------
namespace {
std::atomic<DeviceWorkHook> g_work_begin{nullptr};
std::atomic<DeviceWorkHook> g_work_end{nullptr};
// Brackets one kernel launch or memory operation with the hooks, also when it throws.
struct DeviceWork {
  DeviceWorkHook end = g_work_end.load(std::memory_order_acquire);
  DeviceWork() {
    if (DeviceWorkHook begin = g_work_begin.load(std::memory_order_acquire)) begin();
  }
  ~DeviceWork() {
    if (end) end();
  }
  DeviceWork(const DeviceWork&) = delete;
  DeviceWork& operator=(const DeviceWork&) = delete;
};
}  // namespace

void set_device_work_hooks(DeviceWorkHook begin, DeviceWorkHook end) {
  g_work_end.store(end, std::memory_order_release);
  g_work_begin.store(begin, std::memory_order_release);
}
namespace {

constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kDefaultSharedLimit = 48 * 1024;   // what a launch gets without opting in
constexpr size_t kMaxSharedLimit = 227 * 1024;      // sm_90 opt-in maximum
constexpr uint64_t kPoison = ~0ull;                 // value of a shuffle from a lane not taking part

std::atomic<int> g_last_error{cudaSuccess};

void set_error(cudaError_t e) { g_last_error.store(e, std::memory_order_relaxed); }

// ---- futex wait/wake on a 32-bit generation word ---------------------------------------------
// No spinning: a block has up to 1024 threads on a few cores, so a spinning waiter only delays
// the thread it waits for (measured: yield-spinning before sleeping made launches slower here).
void wait_while_equal(std::atomic<uint32_t>& word, uint32_t old) {
  while (word.load(std::memory_order_acquire) == old) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, old, nullptr,
            nullptr, 0);
#else
    word.wait(old, std::memory_order_acquire);
#endif
  }
}
void wake_all(std::atomic<uint32_t>& word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
#else
  word.notify_all();
#endif
}
void bump_and_wake_all(std::atomic<uint32_t>& word) {
  word.fetch_add(1, std::memory_order_release);
  wake_all(word);
}

struct KernelAbort {};  // unwinds a kernel body once its launch has failed

std::string lanes_str(unsigned mask) {
  std::string s = "{";
  for (int l = 0; l < 32; ++l)
    if (mask >> l & 1u) s += (s.size() > 1 ? "," : "") + std::to_string(l);
  return s + "}";
}
std::string hex(unsigned v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}
std::string xyz(unsigned x, unsigned y, unsigned z) {
  return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}

// State of one warp of the running block, guarded by its own mutex `m` (32 contenders at most).
struct WarpState {
  std::mutex m;
  unsigned lanes = 0;       // lanes that exist (the last warp of a block may be partial)
  unsigned exited = 0;      // lanes that have returned from the kernel in this block
  unsigned cur_mask = 0;    // participants of the collective in flight (0: none)
  unsigned arrived = 0;
  const char* cur_what = nullptr;
  unsigned queued = 0;      // lanes waiting for a collective with another (disjoint) mask to end
  uint64_t in[32] = {};
  int src[32] = {};
  uint64_t out[32] = {};    // written by the completing lane; read by lane l after epoch[l] moves
  std::atomic<uint32_t> epoch[32];  // bumped for each lane whose collective completed
  std::atomic<uint32_t> gen{0};     // futex word: bumped whenever a collective completes
};

// Block-wide counters packed in one 64-bit word, changed only by atomic read-modify-writes:
// every arrival sees a consistent snapshot of all three, with no mutex convoy among hundreds of
// threads. The RMWs are acq_rel, so the last arriver of a barrier has acquired every earlier
// arrival (release sequence) before it releases the waiters.
constexpr uint64_t kArrived = 1;           // threads waiting at __syncthreads
constexpr uint64_t kExited = 1ull << 16;   // threads that returned from the kernel (this block)
constexpr uint64_t kBlocked = 1ull << 32;  // threads asleep in __syncthreads or a warp collective
unsigned arrived_of(uint64_t c) { return static_cast<unsigned>(c & 0xffff); }
unsigned exited_of(uint64_t c) { return static_cast<unsigned>(c >> 16 & 0xffff); }
unsigned blocked_of(uint64_t c) { return static_cast<unsigned>(c >> 32 & 0xffff); }

struct Launch {
  const char* name = "";
  dim3 grid, block;
  size_t smem = 0;
  void (*body)(const void*) = nullptr;
  const void* payload = nullptr;
  unsigned nthreads = 0, nwarps = 0;
  unsigned long long nblocks = 0;
  unsigned char* dyn = nullptr;

  std::atomic<uint64_t> counts{0};
  std::atomic<int> first_exited{-1};
  std::atomic<uint32_t> bar_gen{0}, block_gen{0};
  std::unique_ptr<WarpState[]> warps;

  std::mutex error_mutex;
  std::string error;  // the first failure; guarded by error_mutex
  std::atomic<bool> failed{false};
};

struct ThreadCtx {
  Launch* L = nullptr;
  unsigned tid = 0, lane = 0, warp = 0;
};
thread_local ThreadCtx tl;

std::string where() {
  const Launch& L = *tl.L;
  return std::string("kernel '") + L.name + "' block " + xyz(blockIdx.x, blockIdx.y, blockIdx.z) +
         " thread " + xyz(threadIdx.x, threadIdx.y, threadIdx.z) + " (warp " +
         std::to_string(tl.warp) + " lane " + std::to_string(tl.lane) + ")";
}

// Marks the launch failed (first message wins) and wakes every waiter; they unwind.
void fail(Launch& L, const std::string& msg) {
  {
    std::lock_guard lk(L.error_mutex);
    if (L.error.empty()) L.error = msg;
  }
  L.failed.store(true, std::memory_order_release);
  bump_and_wake_all(L.bar_gen);
  bump_and_wake_all(L.block_gen);
  for (unsigned w = 0; w < L.nwarps; ++w) bump_and_wake_all(L.warps[w].gen);
}

[[noreturn]] void fail_and_unwind(Launch& L, const std::string& msg) {
  fail(L, msg);
  throw KernelAbort{};
}

// `c` is the counter word right after the caller counted itself as blocked or exited. When
// every thread is blocked or gone and at least one is blocked, no thread is left to release
// anyone: a deadlock (a hang on the GPU). Only the thread whose RMW produced that state sees it.
// Call without holding a warp mutex.
bool deadlocked(Launch& L, uint64_t c) {
  if (blocked_of(c) == 0 || blocked_of(c) + exited_of(c) != L.nthreads) return false;
  std::ostringstream os;
  os << "deadlock in kernel '" << L.name << "' block " << xyz(blockIdx.x, blockIdx.y, blockIdx.z)
     << ": no thread can make progress (" << exited_of(c) << " returned from the kernel";
  if (arrived_of(c)) os << ", " << arrived_of(c) << " wait at __syncthreads()";
  for (unsigned w = 0; w < L.nwarps; ++w) {
    WarpState& W = L.warps[w];
    std::lock_guard lk(W.m);
    if (W.cur_mask)
      os << ", warp " << w << " lanes " << lanes_str(W.arrived) << " wait in " << W.cur_what
         << " with mask " << hex(W.cur_mask) << " for lanes " << lanes_str(W.cur_mask & ~W.arrived);
    if (W.queued) os << ", warp " << w << ": " << W.queued << " lane(s) wait for that collective to end";
  }
  os << ")";
  fail(L, os.str());
  return true;
}

Launch& require_kernel(const char* what) {
  if (!tl.L)
    throw KernelError(cudaErrorLaunchFailure,
                      std::string(what) + " called outside a kernel launched by the CUDA-on-CPU runtime");
  return *tl.L;
}

// ---- warp collectives --------------------------------------------------------------------------
enum class Kind { Shfl, Vote, Sync };

const char* const kShflIdx = "__shfl_sync";
const char* const kShflUp = "__shfl_up_sync";
const char* const kShflDown = "__shfl_down_sync";
const char* const kShflXor = "__shfl_xor_sync";
const char* const kBallot = "__ballot_sync";
const char* const kAny = "__any_sync";
const char* const kAll = "__all_sync";
const char* const kSyncwarp = "__syncwarp";

// The last lane to arrive computes every participant's result, then releases them (W.m held).
void complete(Launch& L, WarpState& W, Kind kind) {
  const unsigned eff = W.cur_mask;
  unsigned ballot = 0;
  if (kind == Kind::Vote)
    for (int l = 0; l < 32; ++l)
      if ((eff >> l & 1u) && W.in[l] != 0) ballot |= 1u << l;
  for (int l = 0; l < 32; ++l) {
    if (!(eff >> l & 1u)) continue;
    if (kind == Kind::Shfl) {
      const int s = W.src[l];
      W.out[l] = (eff >> s & 1u) ? W.in[s] : kPoison;
    } else {
      W.out[l] = ballot;
    }
  }
  // Everyone but the completer slept; queued lanes go and retry. Un-count them *before* the
  // epoch moves: a waiter that sees its epoch change runs on at once, and if it reached its
  // next barrier while still counted here, the deadlock check would see a phantom sleeper.
  const uint64_t released = static_cast<uint64_t>(__builtin_popcount(eff)) - 1 + W.queued;
  if (released) L.counts.fetch_sub(released * kBlocked, std::memory_order_acq_rel);
  for (int l = 0; l < 32; ++l)
    if (eff >> l & 1u) W.epoch[l].fetch_add(1, std::memory_order_release);
  W.queued = 0;
  W.cur_mask = 0;
  W.arrived = 0;
  W.cur_what = nullptr;
  bump_and_wake_all(W.gen);
}

uint64_t warp_collective(Kind kind, const char* what, unsigned mask, uint64_t value, int src) {
  Launch& L = require_kernel(what);
  const unsigned lane = tl.lane, bit = 1u << lane;
  if (L.failed.load(std::memory_order_acquire)) throw KernelAbort{};
  WarpState& W = L.warps[tl.warp];
  std::unique_lock lk(W.m);
  if (!(mask & bit)) {
    lk.unlock();
    fail_and_unwind(L, where() + " called " + what + " with mask " + hex(mask) +
                           ", which does not name its own lane");
  }
  // Lanes past the end of a partial last warp do not exist: they are dropped from the mask
  // (as the hardware does). Lanes that existed but returned from the kernel are a bug.
  const unsigned eff = mask & W.lanes;
  if (eff & W.exited) {
    const unsigned gone = eff & W.exited;
    lk.unlock();
    fail_and_unwind(L, where() + " called " + what + " with mask " + hex(mask) + " naming lane(s) " +
                           lanes_str(gone) + " that already returned from the kernel");
  }
  // One collective per warp at a time; lanes of a disjoint group wait for it to end.
  while (W.cur_mask != 0 && W.cur_mask != eff) {
    if (W.cur_mask & eff) {
      const std::string msg = where() + " called " + what + " with mask " + hex(mask) + " while lanes " +
                              lanes_str(W.arrived) + " wait in " + W.cur_what + " with mask " +
                              hex(W.cur_mask) +
                              ": lanes named in a mask must all call the same primitive with the same mask";
      lk.unlock();
      fail_and_unwind(L, msg);
    }
    ++W.queued;
    const uint64_t c = L.counts.fetch_add(kBlocked, std::memory_order_acq_rel) + kBlocked;
    const uint32_t g = W.gen.load(std::memory_order_relaxed);
    lk.unlock();
    if (deadlocked(L, c)) throw KernelAbort{};
    wait_while_equal(W.gen, g);
    if (L.failed.load(std::memory_order_acquire)) throw KernelAbort{};
    lk.lock();
  }
  if (W.cur_mask == 0) {
    W.cur_mask = eff;
    W.arrived = 0;
    W.cur_what = what;
  } else if (W.cur_what != what) {
    const std::string msg = where() + " called " + what + " while lanes " + lanes_str(W.arrived) +
                            " with the same mask " + hex(mask) + " are in " + W.cur_what +
                            " (divergent warp primitives)";
    lk.unlock();
    fail_and_unwind(L, msg);
  }
  W.in[lane] = value;
  W.src[lane] = src;
  W.arrived |= bit;
  if (W.arrived == eff) {
    complete(L, W, kind);
    return W.out[lane];
  }
  const uint64_t c = L.counts.fetch_add(kBlocked, std::memory_order_acq_rel) + kBlocked;
  // Read the futex word before checking the epoch: a completion bumps epoch, then gen, so a
  // wait on the gen value read here cannot miss it.
  const uint32_t e = W.epoch[lane].load(std::memory_order_relaxed);
  uint32_t g = W.gen.load(std::memory_order_relaxed);
  lk.unlock();
  if (deadlocked(L, c)) throw KernelAbort{};
  while (W.epoch[lane].load(std::memory_order_acquire) == e) {
    if (L.failed.load(std::memory_order_acquire)) throw KernelAbort{};
    wait_while_equal(W.gen, g);
    g = W.gen.load(std::memory_order_relaxed);
  }
  if (L.failed.load(std::memory_order_acquire)) throw KernelAbort{};
  // out[lane] is rewritten only by a later collective that names this lane, and that one cannot
  // complete before this lane arrives at it, i.e. after this read.
  return W.out[lane];
}

// ---- block execution -------------------------------------------------------------------------
uint3 unflatten(unsigned long long i, dim3 d) {
  uint3 u;
  u.x = static_cast<unsigned>(i % d.x);
  i /= d.x;
  u.y = static_cast<unsigned>(i % d.y);
  u.z = static_cast<unsigned>(i / d.y);
  return u;
}

// A thread that returned from the kernel waits here for the rest of its block. The last one
// resets the block state for the next block and releases the others.
bool end_of_block(Launch& L) {
  if (L.failed.load(std::memory_order_acquire)) return false;
  WarpState& W = L.warps[tl.warp];
  const unsigned bit = 1u << tl.lane;
  {
    std::unique_lock lk(W.m);
    W.exited |= bit;
    if (W.cur_mask & bit) {
      const std::string msg = where() + " returned from the kernel while lanes " + lanes_str(W.arrived) +
                              " wait for it in " + W.cur_what + " with mask " + hex(W.cur_mask) +
                              ", which names lane " + std::to_string(tl.lane) +
                              ": lanes named in a mask must all call the same primitive with the same mask";
      lk.unlock();
      fail(L, msg);
      return false;
    }
  }
  int none = -1;
  L.first_exited.compare_exchange_strong(none, static_cast<int>(tl.tid), std::memory_order_relaxed);
  const uint32_t g = L.block_gen.load(std::memory_order_relaxed);  // before arriving: cannot miss the bump
  const uint64_t c = L.counts.fetch_add(kExited, std::memory_order_acq_rel) + kExited;
  if (arrived_of(c) > 0) {
    fail(L, where() + " returned from the kernel while " + std::to_string(arrived_of(c)) +
                " thread(s) wait at __syncthreads(): every thread of a block must reach every "
                "__syncthreads() (divergent barrier, e.g. an early return)");
    return false;
  }
  if (exited_of(c) == L.nthreads) {
    // Everyone else sleeps until block_gen moves: reset without further locking.
    for (unsigned w = 0; w < L.nwarps; ++w) L.warps[w].exited = 0;
    L.first_exited.store(-1, std::memory_order_relaxed);
    if (L.dyn) std::memset(L.dyn, 0xFF, L.smem);  // shared memory starts undefined in every block
    L.counts.fetch_sub(L.nthreads * kExited, std::memory_order_acq_rel);
    bump_and_wake_all(L.block_gen);
    return true;
  }
  if (deadlocked(L, c)) return false;
  wait_while_equal(L.block_gen, g);
  return !L.failed.load(std::memory_order_acquire);
}

void run_thread(Launch& L, unsigned tid) {
  tl = ThreadCtx{&L, tid, tid % 32u, tid / 32u};
  threadIdx = unflatten(tid, L.block);
  blockDim = L.block;
  gridDim = L.grid;
  for (unsigned long long b = 0; b < L.nblocks; ++b) {
    blockIdx = unflatten(b, L.grid);
    try {
      L.body(L.payload);
    } catch (const KernelAbort&) {
    } catch (const std::exception& e) {
      fail(L, where() + " threw: " + e.what());
    } catch (...) {
      fail(L, where() + " threw an unknown exception");
    }
    if (!end_of_block(L)) break;
  }
  tl = ThreadCtx{};
}

// ---- the thread pool ---------------------------------------------------------------------------
// Worker i always plays linear thread i of the block. Workers sleep in groups of 32 on one futex
// word each, so a launch of n threads costs ceil(n/32) wake-ups; it then sleeps on `done_gen`
// until the last of its workers has finished. The group word itself says how many workers of
// the group take part (low 6 bits; the rest is a sequence number), so a worker that is not
// needed never reads launch state, even if it wakes up late.
class Pool {
 public:
  static Pool& instance() {
    static Pool pool;
    return pool;
  }

  void run(Launch& L) {
    std::lock_guard lock(launch_mutex_);  // one emulated device: launches run one at a time
    while (threads_.size() < L.nthreads) {
      const unsigned i = static_cast<unsigned>(threads_.size());
      // The worker starts from the group's current value, so the bump below wakes it even if
      // it has not reached its first wait yet.
      const uint32_t seen = groups_[i / 32].go.load(std::memory_order_relaxed);
      threads_.emplace_back([this, i, seen] { worker(i, seen); });
    }
    current_ = &L;
    remaining_.store(L.nthreads, std::memory_order_relaxed);
    const uint32_t d = done_gen_.load(std::memory_order_relaxed);
    for (unsigned g = 0; g * 32 < L.nthreads; ++g) {
      const uint32_t count = std::min(32u, L.nthreads - 32 * g);
      std::atomic<uint32_t>& go = groups_[g].go;
      go.store((((go.load(std::memory_order_relaxed) >> 6) + 1) << 6) | count, std::memory_order_release);
      wake_all(go);
    }
    wait_while_equal(done_gen_, d);
    current_ = nullptr;
  }

  ~Pool() {
    {
      std::lock_guard lock(launch_mutex_);
      stopping_.store(true, std::memory_order_relaxed);
      for (auto& g : groups_) {
        g.go.fetch_add(1u << 6, std::memory_order_release);  // participant count 0
        wake_all(g.go);
      }
    }
    for (auto& t : threads_) t.join();
  }

 private:
  struct alignas(64) Group {
    std::atomic<uint32_t> go{0};
  };

  void worker(unsigned i, uint32_t seen) {
    Group& group = groups_[i / 32];
    for (;;) {
      wait_while_equal(group.go, seen);
      seen = group.go.load(std::memory_order_acquire);
      if (stopping_.load(std::memory_order_relaxed)) return;
      if (i % 32 >= (seen & 63u)) continue;  // not needed by this launch
      run_thread(*current_, i);
      if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) bump_and_wake_all(done_gen_);
    }
  }

  std::mutex launch_mutex_;
  std::vector<std::thread> threads_;
  Group groups_[kMaxThreadsPerBlock / 32];
  Launch* current_ = nullptr;  // written before the group words are released; read by participants
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned> remaining_{0};
  std::atomic<uint32_t> done_gen_{0};
};

std::mutex g_attr_mutex;
std::unordered_map<const void*, size_t>& shared_limits() {
  static std::unordered_map<const void*, size_t> m;
  return m;
}

[[noreturn]] void launch_error(cudaError_t code, const std::string& msg) {
  set_error(code);
  throw KernelError(code, msg);
}

// ---- allocation registry ---------------------------------------------------------------------
std::mutex g_alloc_mutex;
std::unordered_map<void*, size_t>& allocations() {
  static std::unordered_map<void*, size_t> m;
  return m;
}

}  // namespace

// ---- public entry points ---------------------------------------------------------------------
namespace detail {

void launch_erased(const char* name, const void* kernel_id, dim3 grid, dim3 block,
                   size_t shared_bytes, void (*body)(const void*), const void* payload) {
  if (tl.L)
    launch_error(cudaErrorLaunchFailure, std::string("launch of '") + name +
                                             "' from inside a kernel: dynamic parallelism is not supported");
  const unsigned long long nthreads = block.count(), nblocks = grid.count();
  if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 ||
      block.z > 64 || nthreads > kMaxThreadsPerBlock || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    launch_error(cudaErrorInvalidConfiguration,
                 std::string("launch of '") + name + "': invalid configuration grid " +
                     xyz(grid.x, grid.y, grid.z) + " block " + xyz(block.x, block.y, block.z) +
                     " (block <= 1024 threads, (1024,1024,64); grid (2^31-1,65535,65535); no zero)");
  size_t limit = kDefaultSharedLimit;
  {
    std::lock_guard lk(g_attr_mutex);
    auto it = shared_limits().find(kernel_id);
    if (it != shared_limits().end()) limit = it->second;
  }
  if (shared_bytes > limit)
    launch_error(cudaErrorInvalidValue, std::string("launch of '") + name + "': " +
                                            std::to_string(shared_bytes) +
                                            " bytes of dynamic shared memory exceed the limit of " +
                                            std::to_string(limit) + " (raise it with cudaFuncSetAttribute)");

  Launch L;
  L.name = name;
  L.grid = grid;
  L.block = block;
  L.smem = shared_bytes;
  L.body = body;
  L.payload = payload;
  L.nthreads = static_cast<unsigned>(nthreads);
  L.nwarps = (L.nthreads + 31) / 32;
  L.nblocks = nblocks;
  L.warps = std::make_unique<WarpState[]>(L.nwarps);
  for (unsigned w = 0; w < L.nwarps; ++w) {
    const unsigned n = std::min(32u, L.nthreads - 32 * w);
    L.warps[w].lanes = n == 32 ? ~0u : (1u << n) - 1;
  }
  // Exactly shared_bytes (ASAN sees an overflow), 128-byte aligned like a GPU's shared window.
  L.dyn = static_cast<unsigned char*>(::operator new(shared_bytes, std::align_val_t{128}));
  std::memset(L.dyn, 0xFF, shared_bytes);

  {
    DeviceWork device_work;
    Pool::instance().run(L);
  }

  ::operator delete(L.dyn, std::align_val_t{128});
  if (L.failed.load(std::memory_order_acquire)) launch_error(cudaErrorLaunchFailure, L.error);
}

uint64_t warp_shuffle(unsigned mask, uint64_t bits, ShflMode mode, int arg, int width) {
  Launch& L = require_kernel("__shfl_*_sync");
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
    fail_and_unwind(L, where() + ": warp shuffle width " + std::to_string(width) +
                           " is not a power of two in [1, 32]");
  }
  const int lane = static_cast<int>(tl.lane);
  const int seg = lane & ~(width - 1);   // first lane of this lane's width-segment
  const int pos = lane & (width - 1);
  int src = lane;
  const char* what = kShflIdx;
  switch (mode) {
    case ShflMode::Idx:   // srcLane is taken modulo width, inside the segment
      src = seg + (arg & (width - 1));
      break;
    case ShflMode::Up:    // lanes below delta keep their own value
      what = kShflUp;
      src = pos < arg ? lane : lane - arg;
      break;
    case ShflMode::Down:  // lanes whose source is past the segment keep their own value
      what = kShflDown;
      src = pos + arg >= width ? lane : lane + arg;
      break;
    case ShflMode::Xor:   // may read earlier segments; a later one gives the own value
      what = kShflXor;
      src = lane ^ arg;
      if (src < 0 || src >= seg + width) src = lane;
      break;
  }
  return warp_collective(Kind::Shfl, what, mask, bits, src);
}

void* dynamic_shared_memory() { return require_kernel("dynamic shared memory").dyn; }

}  // namespace detail

void __syncthreads() {
  Launch& L = require_kernel("__syncthreads()");
  if (L.failed.load(std::memory_order_acquire)) throw KernelAbort{};
  const uint32_t g = L.bar_gen.load(std::memory_order_relaxed);  // before arriving: cannot miss the bump
  const uint64_t c = L.counts.fetch_add(kArrived + kBlocked, std::memory_order_acq_rel) + kArrived + kBlocked;
  if (exited_of(c) > 0) {
    const uint3 t = unflatten(static_cast<unsigned>(std::max(0, L.first_exited.load())), L.block);
    fail_and_unwind(L, where() + " reached __syncthreads() after thread " + xyz(t.x, t.y, t.z) +
                           " returned from the kernel: every thread of a block must reach every "
                           "__syncthreads() (divergent barrier, e.g. an early return)");
  }
  if (arrived_of(c) == L.nthreads) {
    // Last arrival: every thread is here, so nothing else can touch the counters meanwhile.
    L.counts.fetch_sub(L.nthreads * (kArrived + kBlocked), std::memory_order_acq_rel);
    bump_and_wake_all(L.bar_gen);
    return;
  }
  if (deadlocked(L, c)) throw KernelAbort{};
  wait_while_equal(L.bar_gen, g);
  if (L.failed.load(std::memory_order_acquire)) throw KernelAbort{};
}

void __syncwarp(unsigned mask) {
  warp_collective(Kind::Sync, kSyncwarp, mask, 0, static_cast<int>(tl.lane));
}

unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(warp_collective(Kind::Vote, kBallot, mask, predicate != 0, 0));
}

int __any_sync(unsigned mask, int predicate) {
  return warp_collective(Kind::Vote, kAny, mask, predicate != 0, 0) != 0;
}

int __all_sync(unsigned mask, int predicate) {
  const unsigned ballot = static_cast<unsigned>(warp_collective(Kind::Vote, kAll, mask, predicate != 0, 0));
  return ballot == (mask & tl.L->warps[tl.warp].lanes);
}

#if defined(__SANITIZE_THREAD__)
// TSAN does not model fences; a seq_cst RMW on one shared word gives it the same ordering.
std::atomic<int> g_fence_word{0};
void __threadfence() { g_fence_word.fetch_add(0, std::memory_order_seq_cst); }
#else
void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
#endif
void __threadfence_block() { __threadfence(); }

// ---- memory and error shims ------------------------------------------------------------------
cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (!ptr) return cudaErrorInvalidValue;
  void* p = nullptr;
  if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0 || !p) {
    *ptr = nullptr;
    set_error(cudaErrorMemoryAllocation);
    return cudaErrorMemoryAllocation;
  }
  std::memset(p, 0xFF, bytes);  // device memory starts undefined: make reads of it visible
  {
    std::lock_guard lk(g_alloc_mutex);
    allocations()[p] = bytes;
  }
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  {
    std::lock_guard lk(g_alloc_mutex);
    if (allocations().erase(ptr) == 0) {
      set_error(cudaErrorInvalidDevicePointer);
      return cudaErrorInvalidDevicePointer;
    }
  }
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) { return cudaMalloc(ptr, bytes); }
cudaError_t cudaFreeHost(void* ptr) { return cudaFree(ptr); }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) {
    set_error(cudaErrorInvalidValue);
    return cudaErrorInvalidValue;
  }
  DeviceWork device_work;
  std::memcpy(dst, src, bytes);  // overlapping ranges are undefined in CUDA too; ASAN reports them
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!ptr) {
    set_error(cudaErrorInvalidValue);
    return cudaErrorInvalidValue;
  }
  DeviceWork device_work;
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(ptr, value, bytes);
}

// Launches are synchronous, so synchronising only reports the error state.
cudaError_t cudaDeviceSynchronize() { return static_cast<cudaError_t>(g_last_error.load(std::memory_order_relaxed)); }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaDeviceSynchronize(); }

cudaError_t cudaGetLastError() {
  return static_cast<cudaError_t>(g_last_error.exchange(cudaSuccess, std::memory_order_relaxed));
}
cudaError_t cudaPeekAtLastError() { return static_cast<cudaError_t>(g_last_error.load(std::memory_order_relaxed)); }

const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      static_cast<size_t>(value) > kMaxSharedLimit) {
    set_error(cudaErrorInvalidValue);
    return cudaErrorInvalidValue;
  }
  std::lock_guard lk(g_attr_mutex);
  shared_limits()[kernel] = static_cast<size_t>(value);
  return cudaSuccess;
}

size_t live_allocations() {
  std::lock_guard lk(g_alloc_mutex);
  return allocations().size();
}

}  // namespace moeseg::cuda_on_cpu
