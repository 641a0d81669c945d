// CUDA on the CPU: what weft's emitted CUDA C needs to compile with a host
// C++ compiler and run with GPU semantics.
//
// The emitted source is included after this header, unchanged. It spells the
// few things that differ between a GPU and a host through the platform layer
// (WEFT_SYNC_BLOCK, WEFT_SYNC_NAMED, WEFT_SHARED_ARRAY, WEFT_SHARED_POOL,
// WEFT_SHARED_VIEW, WEFT_LAUNCH_SLOTS, WEFT_LAUNCH_ARGS, weft_cvt_*), which
// it defines for CUDA only when WEFT_HOST is not defined; this header
// defines WEFT_HOST and the host spellings. CUDA intrinsics and built-ins
// are defined here with their CUDA semantics, bit for bit.
//
// Execution: one physical block at a time per OS thread (the caller runs
// blocks on several threads); each CUDA thread of the block is a fiber: a
// stack of its own, switched in user space on Linux with glibc (by
// weft_ctx_switch on x86-64, ucontext on aarch64), else -- or when compiled with
// WEFT_CPU_THREADS -- an OS thread of its own that runs only while the
// scheduler has handed it the block (a mutex and one condition variable per
// fiber), so both forms run the same schedule with the same results and
// errors. A fiber runs until it reaches a scheduling point -- a barrier,
// a named barrier, a shuffle -- or returns; the block's scheduler then runs
// the other runnable fibers, in the order the schedule asks for (forward,
// reverse or seeded random, redrawn every round), and releases a barrier when
// every thread it counts has arrived, a shuffle when every live lane of the
// warp has. When nothing can run and threads still wait, the launch fails
// with a typed error: a deadlock, a barrier reached by the wrong number of
// warps, a shuffle naming an exited lane.
//
// Shared memory: every shared array and every view of the dynamic pool is
// its own heap allocation of exactly its size, filled with the launch's fill
// byte, so a sanitizer sees exact bounds and a result that depends on the
// fill exposes an uninitialised read.

#ifndef WEFT_CPU_H
#define WEFT_CPU_H

#define WEFT_HOST 1

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// The portable fiber form where ucontext is not known to work.
#if !defined(WEFT_CPU_THREADS) && \
    !(defined(__linux__) && defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__)))
#define WEFT_CPU_THREADS 1
#endif

#ifdef WEFT_CPU_THREADS
#include <pthread.h>

#include <condition_variable>
#include <mutex>
#elif defined(__x86_64__)
// Fibers switch with weft_ctx_switch below: the callee-saved registers, the
// SSE and x87 control words and the stack pointer, nothing else.
// swapcontext also saves and restores the signal mask -- two system calls
// per switch -- which dominated the run time of kernels with many barriers.
#define WEFT_CPU_SWITCH 1
#else
#include <ucontext.h>
#endif

#include <new>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define WEFT_ASAN 1
#endif

// ---- CUDA keywords -------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __maxnreg__(...)
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
    unsigned int x, y, z;
};

// ---- The scheduler's state ------------------------------------------------

enum WeftWait { WEFT_RUNNABLE, WEFT_AT_BARRIER, WEFT_AT_SHUFFLE, WEFT_EXITED };

enum WeftShflKind { WEFT_SHFL_IDX, WEFT_SHFL_UP, WEFT_SHFL_DOWN, WEFT_SHFL_XOR };

// Error codes; the Rust side (crates/cpu/src/run.rs) maps them to typed errors.
enum WeftStatus {
    WEFT_OK = 0,
    WEFT_DEADLOCK = 1,
    WEFT_BARRIER_COUNT = 2,
    WEFT_SHUFFLE_EXITED = 3,
    WEFT_SHARED_VIEW = 4,
    WEFT_SHUFFLE_DIVERGED = 5,
    WEFT_RESOURCE = 6,
    WEFT_HUNG = 7,
};

struct WeftFiber {
#ifdef WEFT_CPU_THREADS
    pthread_t thread;
    // Set when the thread has handed the block back for the last time.
    bool finished;
    struct WeftBlockRun* run;
    // Signalled when the scheduler hands this fiber the block.
    std::condition_variable* go;
#elif defined(WEFT_CPU_SWITCH)
    // The fiber's saved stack pointer (its registers are on its stack).
    void* sp;
    void* stack;
#else
    ucontext_t ctx;
    void* stack;
#endif
    uint3 tid;
    int wait;
    // Barrier: id and thread count (-1: the whole block).
    int bar_id, bar_threads;
    // Shuffle: kind, operand, width, the value's bits in and out.
    int shfl_kind, shfl_width;
    unsigned int shfl_operand;
    unsigned long long shfl_in, shfl_out;
    // Which shared array declaration comes next (WEFT_SHARED_ARRAY).
    unsigned int next_shared;
};

struct WeftSharedBlock {
    unsigned char* ptr;
    unsigned long long offset, bytes;
};

struct WeftBlockRun {
    // The launch.
    const void* slots;
    int nslots;
    void* const* args;
    unsigned int threads;
    unsigned long long pool_bytes;
    unsigned char fill;
    // The block.
    uint3 bid;
    WeftFiber* fibers;
    WeftFiber* current;
#ifdef WEFT_CPU_THREADS
    // Who holds the block: a fiber's index, or -1 for the scheduler.
    std::mutex* lock;
    std::condition_variable* back;
    long turn;
    // Set at teardown: a resumed fiber unwinds instead of running on.
    bool cancel;
#elif defined(WEFT_CPU_SWITCH)
    void* scheduler;
#else
    ucontext_t scheduler;
#endif
#ifdef WEFT_ASAN
    void* fake_stack;
#endif
    std::vector<WeftSharedBlock> arrays;
    std::vector<WeftSharedBlock> views;
    unsigned char* pool;
    int status;
    char* message;
    size_t message_len;
};

static thread_local WeftBlockRun* weft_run;

#define threadIdx (weft_run->current->tid)
#define blockIdx (weft_run->bid)

static void weft_fail(int status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void weft_fail(int status, const char* fmt, ...)
{
    if (weft_run->status != WEFT_OK) {
        return;
    }
    weft_run->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(weft_run->message, weft_run->message_len, fmt, ap);
    va_end(ap);
}

static const size_t WEFT_STACK_BYTES = 256 * 1024;

#ifdef WEFT_CPU_SWITCH
// weft_ctx_switch(save, load): pushes the callee-saved registers and the
// control words on the current stack, stores the stack pointer in *save,
// continues on the stack `load` (saved the same way) and returns there.
extern "C" void weft_ctx_switch(void** save, void* load);
__asm__(".text\n"
        ".p2align 4\n"
        ".hidden weft_ctx_switch\n"
        ".type weft_ctx_switch,@function\n"
        "weft_ctx_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size weft_ctx_switch, .-weft_ctx_switch\n");

// A new fiber's stack, laid out as weft_ctx_switch leaves a suspended one:
// its first switch "returns" into `entry` with the stack aligned as after a
// call, and the control words of the creating thread.
static void* weft_ctx_new(void* stack, void (*entry)())
{
    uintptr_t top = ((uintptr_t)stack + WEFT_STACK_BYTES) & ~(uintptr_t)15;
    unsigned long long* sp = (unsigned long long*)top;
    *--sp = 0;  // where entry's return address would be: it never returns
    *--sp = (unsigned long long)(uintptr_t)entry;
    for (int i = 0; i < 6; i++) *--sp = 0;  // rbp rbx r12 r13 r14 r15
    unsigned int mxcsr;
    unsigned short fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    *--sp = (unsigned long long)mxcsr | ((unsigned long long)fpucw << 32);
    return sp;
}
#endif

#ifndef WEFT_CPU_THREADS
// Fiber stacks kept by an OS thread for its next blocks: mapping and
// unmapping a stack per thread per block dominated the run time of small
// kernels. Only stacks of blocks that ran to the end come back here.
struct WeftStacks {
    std::vector<void*> free;
    ~WeftStacks()
    {
        for (size_t i = 0; i < free.size(); i++) ::free(free[i]);
    }
};
static thread_local WeftStacks weft_stacks;

static void* weft_stack_take()
{
    if (weft_stacks.free.empty()) {
        return malloc(WEFT_STACK_BYTES);
    }
    void* s = weft_stacks.free.back();
    weft_stacks.free.pop_back();
#ifdef WEFT_ASAN
    __asan_unpoison_memory_region(s, WEFT_STACK_BYTES);
#endif
    return s;
}
#endif

#ifdef WEFT_CPU_THREADS
// Thrown into a fiber resumed at teardown, caught by its thread's entry.
struct WeftCancel {
};
#endif

// Back to the scheduler; returns when the scheduler runs this fiber again.
static void weft_yield()
{
    WeftBlockRun* r = weft_run;
#ifdef WEFT_CPU_THREADS
    WeftFiber* f = r->current;
    const long me = (long)(f - r->fibers);
    {
        std::unique_lock<std::mutex> held(*r->lock);
        r->turn = -1;
        r->back->notify_one();
        f->go->wait(held, [&] { return r->turn == me; });
    }
    if (r->cancel) {
        throw WeftCancel();
    }
#else
#ifdef WEFT_ASAN
    __sanitizer_start_switch_fiber(&r->fake_stack, nullptr, 0);
#endif
#ifdef WEFT_CPU_SWITCH
    weft_ctx_switch(&r->current->sp, r->scheduler);
#else
    swapcontext(&r->current->ctx, &r->scheduler);
#endif
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(r->fake_stack, nullptr, nullptr);
#endif
#endif
}

// ---- The platform layer, host spellings -----------------------------------

static inline void weft_cpu_sync(int id, int threads)
{
    WeftFiber* f = weft_run->current;
    f->wait = WEFT_AT_BARRIER;
    f->bar_id = id;
    f->bar_threads = threads;
    weft_yield();
}

static unsigned char* weft_cpu_alloc(unsigned long long bytes)
{
    unsigned char* p = (unsigned char*)malloc(bytes == 0 ? 1 : bytes);
    if (p == nullptr) {
        return nullptr;
    }
    memset(p, weft_run->fill, bytes);
    return p;
}

// The k-th `__shared__` declaration a thread reaches is the block's k-th array.
static void* weft_cpu_shared(unsigned long long bytes, const char* name)
{
    WeftBlockRun* r = weft_run;
    unsigned int k = r->current->next_shared++;
    if (k < r->arrays.size()) {
        if (r->arrays[k].bytes != bytes) {
            weft_fail(WEFT_SHARED_VIEW, "shared array `%s` declared with %llu bytes by one thread and %llu by another",
                      name, bytes, r->arrays[k].bytes);
        }
        return r->arrays[k].ptr;
    }
    unsigned char* p = weft_cpu_alloc(bytes);
    if (p == nullptr) {
        weft_fail(WEFT_RESOURCE, "cannot allocate %llu bytes for shared array `%s`", bytes, name);
        weft_run->current->wait = WEFT_EXITED;
        weft_yield();
    }
    r->arrays.push_back(WeftSharedBlock{p, 0, bytes});
    return p;
}

// A typed view of the pool: checked against the pool's bytes, then its own
// allocation (the same one for every thread and logical block of the block).
static void* weft_cpu_view(unsigned long long offset, unsigned long long bytes, const char* name)
{
    WeftBlockRun* r = weft_run;
    if (offset > r->pool_bytes || bytes > r->pool_bytes - offset) {
        weft_fail(WEFT_SHARED_VIEW,
                  "shared view `%s` covers bytes [%llu, %llu) of the dynamic pool, which has %llu bytes", name,
                  offset, offset + bytes, r->pool_bytes);
        r->current->wait = WEFT_EXITED;
        weft_yield();
    }
    for (size_t i = 0; i < r->views.size(); i++) {
        const WeftSharedBlock& v = r->views[i];
        if (v.offset == offset && v.bytes == bytes) {
            return v.ptr;
        }
        if (offset < v.offset + v.bytes && v.offset < offset + bytes) {
            weft_fail(WEFT_SHARED_VIEW, "shared view `%s` [%llu, %llu) overlaps another view [%llu, %llu) of the pool",
                      name, offset, offset + bytes, v.offset, v.offset + v.bytes);
            r->current->wait = WEFT_EXITED;
            weft_yield();
        }
    }
    unsigned char* p = weft_cpu_alloc(bytes);
    if (p == nullptr) {
        weft_fail(WEFT_RESOURCE, "cannot allocate %llu bytes for shared view `%s`", bytes, name);
        r->current->wait = WEFT_EXITED;
        weft_yield();
    }
    r->views.push_back(WeftSharedBlock{p, offset, bytes});
    return p;
}

// ---- The watchdog ----------------------------------------------------------
// Every loop back-edge of emitted code calls WEFT_LOOP_TICK(). The worker
// thread running a launch's blocks sets its deadline (CLOCK_MONOTONIC ns,
// 0: none) with weft_cpu_set_deadline; every 1024 ticks the clock is read,
// and a thread past its deadline fails the block with WEFT_HUNG and never
// runs again (its fiber is abandoned like any faulting thread's).

static thread_local unsigned long long weft_deadline_ns = 0;
static thread_local unsigned int weft_ticks = 0;

static inline unsigned long long weft_now_ns()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

// The deadline of the blocks this thread runs next: `budget_ns` from now (0: none).
extern "C" __attribute__((visibility("default"))) void weft_cpu_set_deadline(unsigned long long budget_ns)
{
    weft_deadline_ns = budget_ns == 0 ? 0 : weft_now_ns() + budget_ns;
}

static inline void weft_cpu_tick()
{
    if (weft_deadline_ns == 0 || (++weft_ticks & 1023u) != 0) return;
    if (weft_now_ns() < weft_deadline_ns) return;
    WeftBlockRun* r = weft_run;
    weft_fail(WEFT_HUNG, "block (%u, %u, %u), thread %u: the launch ran past its deadline (a watchdog's bound)",
              r->bid.x, r->bid.y, r->bid.z, r->current->tid.x);
    r->current->wait = WEFT_EXITED;
    weft_yield();
}

#define WEFT_LOOP_TICK() weft_cpu_tick()
#define WEFT_SYNC_BLOCK() weft_cpu_sync(0, -1)
#define WEFT_SYNC_NAMED(id, threads) weft_cpu_sync((id), (threads))
#define WEFT_SHARED_ARRAY(T, name, len) \
    T(&name)[len] = *reinterpret_cast<T(*)[len]>(weft_cpu_shared(sizeof(T) * (len), #name))
#define WEFT_SHARED_POOL(name) unsigned char* const name = weft_run->pool
#define WEFT_SHARED_VIEW(T, name, pool, offset, len) \
    T* const name = (T*)weft_cpu_view((offset), sizeof(T) * (len), #name)
// A bundle's slot table and argument words: the entry's parameters (a GPU
// module reads them from constant memory).
#define WEFT_LAUNCH_SLOTS slots
#define WEFT_LAUNCH_ARGS args

// ---- Float intrinsics (CUDA semantics) -------------------------------------
// Compiled with -ffp-contract=off: no fused multiply-add unless asked for.

static inline float __uint_as_float(unsigned int x)
{
    float f;
    memcpy(&f, &x, 4);
    return f;
}
static inline unsigned int __float_as_uint(float f)
{
    unsigned int x;
    memcpy(&x, &f, 4);
    return x;
}
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }

// cvt.rzi.sat: truncate, saturate, NaN -> 0.
static inline int __float2int_rz(float f)
{
    if (f != f) return 0;
    if (f >= 2147483648.0f) return 2147483647;
    if (f <= -2147483648.0f) return (int)(-2147483647 - 1);
    return (int)f;
}
static inline unsigned int __float2uint_rz(float f)
{
    if (f != f || f <= 0.0f) return 0u;
    if (f >= 4294967296.0f) return 4294967295u;
    return (unsigned int)f;
}
static inline long long __float2ll_rz(float f)
{
    if (f != f) return 0;
    if (f >= 9223372036854775808.0f) return 9223372036854775807ll;
    if (f <= -9223372036854775808.0f) return (long long)(-9223372036854775807ll - 1ll);
    return (long long)f;
}
static inline unsigned long long __float2ull_rz(float f)
{
    if (f != f || f <= 0.0f) return 0ull;
    if (f >= 18446744073709551616.0f) return 18446744073709551615ull;
    return (unsigned long long)f;
}

// Doubles: IEEE double arithmetic is the same on host and device.
static inline double __longlong_as_double(long long x)
{
    double d;
    memcpy(&d, &x, 8);
    return d;
}
static inline long long __double_as_longlong(double d)
{
    long long x;
    memcpy(&x, &d, 8);
    return x;
}
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline double __dsqrt_rn(double a) { return sqrt(a); }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline int __double2int_rz(double d)
{
    if (d != d) return 0;
    if (d >= 2147483648.0) return 2147483647;
    if (d <= -2147483648.0) return (int)(-2147483647 - 1);
    return (int)d;
}
static inline unsigned int __double2uint_rz(double d)
{
    if (d != d || d <= 0.0) return 0u;
    if (d >= 4294967296.0) return 4294967295u;
    return (unsigned int)d;
}
static inline long long __double2ll_rz(double d)
{
    if (d != d) return 0;
    if (d >= 9223372036854775808.0) return 9223372036854775807ll;
    if (d <= -9223372036854775808.0) return (long long)(-9223372036854775807ll - 1ll);
    return (long long)d;
}
static inline unsigned long long __double2ull_rz(double d)
{
    if (d != d || d <= 0.0) return 0ull;
    if (d >= 18446744073709551616.0) return 18446744073709551615ull;
    return (unsigned long long)d;
}
static inline double __ll2double_rn(long long x) { return (double)x; }
static inline double __ull2double_rn(unsigned long long x) { return (double)x; }
static inline float __ull2float_rn(unsigned long long x) { return (float)x; }
static inline float __double2float_rn(double d) { return (float)d; }
// Toward zero: the nearest conversion, stepped back when it rounded away.
static inline float __double2float_rz(double d)
{
    float f = (float)d;
    if (f - f != 0.0f && d - d == 0.0) {
        f = d > 0.0 ? 3.4028234663852886e38f : -3.4028234663852886e38f;
    } else if (fabs((double)f) > fabs(d)) {
        f = nextafterf(f, 0.0f);
    }
    return f;
}
static inline float __ull2float_rz(unsigned long long x)
{
    float f = (float)x;
    if ((unsigned __int128)f > (unsigned __int128)x) {
        f = nextafterf(f, 0.0f);
    }
    return f;
}
static inline float __int2float_rn(int x) { return (float)x; }
static inline float __uint2float_rn(unsigned int x) { return (float)x; }
static inline float __ll2float_rn(long long x) { return (float)x; }
// Toward zero: the nearest conversion, stepped back when it rounded away.
static inline float __ll2float_rz(long long x)
{
    float f = (float)x;
    __int128 back = (__int128)f;
    if ((x >= 0 && back > (__int128)x) || (x < 0 && back < (__int128)x)) {
        f = nextafterf(f, 0.0f);
    }
    return f;
}

// The hardware's cvt.f32.f16 and cvt.rn.f16.f32 (NaNs are handled by the
// callers in the emitted prelude before these are reached).
static inline float weft_cvt_f16_to_f32(unsigned short h)
{
    const unsigned int sign = (unsigned int)(h & 0x8000u) << 16;
    const unsigned int exp = (h >> 10) & 0x1fu;
    const unsigned int mant = h & 0x3ffu;
    if (exp == 0x1fu) {
        return __uint_as_float(sign | 0x7f800000u | (mant << 13));
    }
    if (exp == 0u) {
        // Subnormal or zero: exact in float.
        const float m = (float)mant * 5.9604644775390625e-8f;  // 2^-24
        return sign ? -m : m;
    }
    return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}
static inline unsigned short weft_cvt_f32_to_f16_rn(float f)
{
    unsigned int x = __float_as_uint(f);
    const unsigned int sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) {
        return (unsigned short)(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u));
    }
    if (x >= 0x47800000u) {
        return (unsigned short)(sign | 0x7c00u);
    }
    if (x < 0x38800000u) {
        // Below f16's smallest normal: let float addition round to the grid.
        const float r = __uint_as_float(x) + 0.5f;
        return (unsigned short)(sign | (__float_as_uint(r) - 0x3f000000u));
    }
    const unsigned int odd = (x >> 13) & 1u;
    x += 0xc8000fffu + odd;
    return (unsigned short)(sign | (x >> 13));
}

// ---- Transcendentals ------------------------------------------------------
// expf, logf, tanhf, erff, sinf, cosf, atanf and their f64 forms are the
// interpreter's (weft_interp::maths),
// installed by the executor through weft_cpu_set_maths before any launch, so
// the two executors agree bit for bit. The host libm's are the fallback.

struct WeftMaths {
    float (*expf)(float);
    float (*logf)(float);
    float (*tanhf)(float);
    float (*erff)(float);
    float (*sinf)(float);
    float (*cosf)(float);
    float (*atanf)(float);
    double (*exp)(double);
    double (*log)(double);
    double (*tanh)(double);
    double (*erf)(double);
    double (*sin)(double);
    double (*cos)(double);
    double (*atan)(double);
};

static WeftMaths weft_maths = {::expf, ::logf, ::tanhf, ::erff, ::sinf, ::cosf, ::atanf, ::exp, ::log, ::tanh, ::erf,
                               ::sin, ::cos, ::atan};

extern "C" __attribute__((visibility("default"))) void weft_cpu_set_maths(const WeftMaths* m)
{
    weft_maths = *m;
}

static inline float weft_host_expf(float x) { return weft_maths.expf(x); }
static inline float weft_host_logf(float x) { return weft_maths.logf(x); }
static inline float weft_host_tanhf(float x) { return weft_maths.tanhf(x); }
static inline float weft_host_erff(float x) { return weft_maths.erff(x); }
static inline float weft_host_sinf(float x) { return weft_maths.sinf(x); }
static inline float weft_host_cosf(float x) { return weft_maths.cosf(x); }
static inline float weft_host_atanf(float x) { return weft_maths.atanf(x); }
static inline double weft_host_exp(double x) { return weft_maths.exp(x); }
static inline double weft_host_log(double x) { return weft_maths.log(x); }
static inline double weft_host_tanh(double x) { return weft_maths.tanh(x); }
static inline double weft_host_erf(double x) { return weft_maths.erf(x); }
static inline double weft_host_sin(double x) { return weft_maths.sin(x); }
static inline double weft_host_cos(double x) { return weft_maths.cos(x); }
static inline double weft_host_atan(double x) { return weft_maths.atan(x); }
#define exp weft_host_exp
#define log weft_host_log
#define tanh weft_host_tanh
#define erf weft_host_erf
#define sin weft_host_sin
#define cos weft_host_cos
#define atan weft_host_atan
#define expf weft_host_expf
#define logf weft_host_logf
#define tanhf weft_host_tanhf
#define erff weft_host_erff
#define sinf weft_host_sinf
#define cosf weft_host_cosf
#define atanf weft_host_atanf

// ---- Warp shuffles: scheduling points with shfl.sync's lane rules ----------

template <typename T>
static inline unsigned long long weft_bits(T v)
{
    unsigned long long b = 0;
    memcpy(&b, &v, sizeof(T));
    return b;
}

template <typename T>
static inline T weft_from_bits(unsigned long long b)
{
    T v;
    memcpy(&v, &b, sizeof(T));
    return v;
}

template <typename T>
static inline T weft_shfl(int kind, T v, unsigned int operand, int width)
{
    WeftFiber* f = weft_run->current;
    f->wait = WEFT_AT_SHUFFLE;
    f->shfl_kind = kind;
    f->shfl_operand = operand;
    f->shfl_width = width;
    f->shfl_in = weft_bits(v);
    weft_yield();
    return weft_from_bits<T>(f->shfl_out);
}

template <typename T>
static inline T __shfl_sync(unsigned int, T v, int lane, int width = 32)
{
    return weft_shfl(WEFT_SHFL_IDX, v, (unsigned int)lane, width);
}
template <typename T>
static inline T __shfl_up_sync(unsigned int, T v, unsigned int delta, int width = 32)
{
    return weft_shfl(WEFT_SHFL_UP, v, delta, width);
}
template <typename T>
static inline T __shfl_down_sync(unsigned int, T v, unsigned int delta, int width = 32)
{
    return weft_shfl(WEFT_SHFL_DOWN, v, delta, width);
}
template <typename T>
static inline T __shfl_xor_sync(unsigned int, T v, int mask, int width = 32)
{
    return weft_shfl(WEFT_SHFL_XOR, v, (unsigned int)mask, width);
}

// The source lane of `lane` under PTX shfl.sync's rules, with the `c`
// operand CUDA's intrinsics pass for `width`.
static inline int weft_shfl_source(int kind, int lane, unsigned int operand, int width)
{
    const int b = (int)(operand & 31u);
    const int seg_mask = (32 - width) & 31;  // c[12:8]
    const int cval = kind == WEFT_SHFL_UP ? 0 : 31;
    const int min_lane = lane & seg_mask;
    const int max_lane = min_lane | (cval & ~seg_mask);
    int j;
    bool ok;
    switch (kind) {
    case WEFT_SHFL_UP:
        j = lane - b;
        ok = j >= max_lane;
        break;
    case WEFT_SHFL_DOWN:
        j = lane + b;
        ok = j <= max_lane;
        break;
    case WEFT_SHFL_XOR:
        j = lane ^ b;
        ok = j <= max_lane;
        break;
    default:
        j = min_lane | (b & ~seg_mask);
        ok = j <= max_lane;
        break;
    }
    return ok ? j : lane;
}

// ---- The block scheduler ---------------------------------------------------

struct WeftSlot;
extern "C" void weft_bundle(const WeftSlot* slots, int nslots, void* const* args);

static void weft_fiber_main()
{
#if defined(WEFT_ASAN) && !defined(WEFT_CPU_THREADS)
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    WeftBlockRun* r = weft_run;
#ifdef WEFT_CPU_THREADS
    if (!r->cancel) {
        try {
            weft_bundle((const WeftSlot*)r->slots, r->nslots, r->args);
        } catch (const WeftCancel&) {
        }
    }
    WeftFiber* f = r->current;
    f->wait = WEFT_EXITED;
    f->finished = true;
    std::lock_guard<std::mutex> held(*r->lock);
    r->turn = -1;
    r->back->notify_one();
#else
    weft_bundle((const WeftSlot*)r->slots, r->nslots, r->args);
    r = weft_run;
    r->current->wait = WEFT_EXITED;
#ifdef WEFT_ASAN
    __sanitizer_start_switch_fiber(nullptr, nullptr, 0);
#endif
#ifdef WEFT_CPU_SWITCH
    void* finished;
    weft_ctx_switch(&finished, r->scheduler);
#else
    setcontext(&r->scheduler);
#endif
#endif
}

#ifdef WEFT_CPU_THREADS
// A fiber's OS thread: waits for its first turn, then runs as the fiber.
static void* weft_fiber_thread(void* arg)
{
    WeftFiber* f = (WeftFiber*)arg;
    WeftBlockRun* r = f->run;
    weft_run = r;
    const long me = (long)(f - r->fibers);
    {
        std::unique_lock<std::mutex> held(*r->lock);
        f->go->wait(held, [&] { return r->turn == me; });
    }
    weft_fiber_main();
    return nullptr;
}
#endif

// A small, seedable generator for the random schedule (splitmix64).
static inline unsigned long long weft_next_random(unsigned long long* state)
{
    unsigned long long z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void weft_switch_to(WeftBlockRun* r, WeftFiber* f)
{
    r->current = f;
#ifdef WEFT_CPU_THREADS
    {
        std::unique_lock<std::mutex> held(*r->lock);
        r->turn = (long)(f - r->fibers);
        f->go->notify_one();
        r->back->wait(held, [&] { return r->turn == -1; });
    }
#else
#ifdef WEFT_ASAN
    __sanitizer_start_switch_fiber(&r->fake_stack, f->stack, WEFT_STACK_BYTES);
#endif
#ifdef WEFT_CPU_SWITCH
    weft_ctx_switch(&r->scheduler, f->sp);
#else
    swapcontext(&r->scheduler, &f->ctx);
#endif
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(r->fake_stack, nullptr, nullptr);
#endif
#endif
    r->current = nullptr;
}

// Releases what can be released: whole-warp shuffles, then barriers.
// Returns whether anything was released; sets an error when a release is
// impossible for a reason the block cannot outgrow.
static bool weft_release(WeftBlockRun* r)
{
    const unsigned int n = r->threads;
    const unsigned int warps = (n + 31) / 32;
    bool released = false;
    // Shuffles: every live lane of the warp must be at a shuffle.
    for (unsigned int w = 0; w < warps; w++) {
        const unsigned int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
        unsigned int at = 0, live = 0;
        for (unsigned int t = lo; t < hi; t++) {
            live += r->fibers[t].wait != WEFT_EXITED;
            at += r->fibers[t].wait == WEFT_AT_SHUFFLE;
        }
        if (at == 0 || at != live) {
            continue;
        }
        WeftFiber* first = nullptr;
        for (unsigned int t = lo; t < hi; t++) {
            WeftFiber* f = &r->fibers[t];
            if (f->wait != WEFT_AT_SHUFFLE) continue;
            if (first == nullptr) {
                first = f;
            } else if (f->shfl_kind != first->shfl_kind || f->shfl_width != first->shfl_width) {
                weft_fail(WEFT_SHUFFLE_DIVERGED,
                          "block (%u, %u, %u), warp %u: lanes %u and %u reached different shuffles (kind %d width %d, "
                          "kind %d width %d)",
                          r->bid.x, r->bid.y, r->bid.z, w, first->tid.x, f->tid.x, first->shfl_kind,
                          first->shfl_width, f->shfl_kind, f->shfl_width);
                return false;
            }
        }
        for (unsigned int t = lo; t < hi; t++) {
            WeftFiber* f = &r->fibers[t];
            if (f->wait != WEFT_AT_SHUFFLE) continue;
            const int lane = (int)(t - lo);
            const int src = weft_shfl_source(f->shfl_kind, lane, f->shfl_operand, f->shfl_width);
            if ((unsigned int)src + lo >= hi || r->fibers[lo + src].wait == WEFT_EXITED) {
                weft_fail(WEFT_SHUFFLE_EXITED,
                          "block (%u, %u, %u), warp %u: lane %d shuffles from lane %d, which has exited", r->bid.x,
                          r->bid.y, r->bid.z, w, lane, src);
                return false;
            }
            f->shfl_out = r->fibers[lo + src].shfl_in;
        }
        for (unsigned int t = lo; t < hi; t++) {
            if (r->fibers[t].wait == WEFT_AT_SHUFFLE) r->fibers[t].wait = WEFT_RUNNABLE;
        }
        released = true;
    }
    if (released) {
        return true;
    }
    // Barriers: a warp has arrived at barrier `id` when every live lane waits there.
    for (unsigned int w = 0; w < warps; w++) {
        const unsigned int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
        int id = -1;
        bool whole = true;
        for (unsigned int t = lo; t < hi; t++) {
            const WeftFiber* f = &r->fibers[t];
            if (f->wait == WEFT_EXITED) continue;
            if (f->wait != WEFT_AT_BARRIER || (id >= 0 && f->bar_id != id)) whole = false;
            if (f->wait == WEFT_AT_BARRIER && id < 0) id = f->bar_id;
        }
        if (id < 0 || !whole) continue;
        // Count the warps at `id` and check they agree on the thread count.
        const int threads = r->fibers[lo].wait == WEFT_AT_BARRIER ? r->fibers[lo].bar_threads : -2;
        unsigned int arrived = 0, live_warps = 0, waiting = 0;
        int count = -2;
        for (unsigned int v = 0; v < warps; v++) {
            const unsigned int vlo = v * 32, vhi = vlo + 32 < n ? vlo + 32 : n;
            bool any_live = false, all_here = true, any_here = false;
            for (unsigned int t = vlo; t < vhi; t++) {
                const WeftFiber* f = &r->fibers[t];
                if (f->wait == WEFT_EXITED) continue;
                any_live = true;
                if (f->wait == WEFT_AT_BARRIER && f->bar_id == id) {
                    any_here = true;
                    waiting++;
                    if (count == -2) count = f->bar_threads;
                    if (f->bar_threads != count) {
                        weft_fail(WEFT_BARRIER_COUNT,
                                  "block (%u, %u, %u): barrier %d reached with thread counts %d and %d", r->bid.x,
                                  r->bid.y, r->bid.z, id, count, f->bar_threads);
                        return false;
                    }
                } else {
                    all_here = false;
                }
            }
            live_warps += any_live;
            arrived += any_here && all_here;
        }
        (void)threads;
        const unsigned int expected = count < 0 ? warps : (unsigned int)count / 32;
        if (count < 0) {
            // __syncthreads: every thread of the block, none exited.
            unsigned int live = 0;
            for (unsigned int t = 0; t < n; t++) live += r->fibers[t].wait != WEFT_EXITED;
            if (waiting == live && live < n) {
                weft_fail(WEFT_BARRIER_COUNT,
                          "block (%u, %u, %u): __syncthreads reached by %u of the block's %u threads; the others "
                          "have exited",
                          r->bid.x, r->bid.y, r->bid.z, live, n);
                return false;
            }
            if (waiting != n) continue;
        } else {
            if (arrived < expected) continue;
            if (arrived > expected) {
                weft_fail(WEFT_BARRIER_COUNT,
                          "block (%u, %u, %u): named barrier %d counts %d threads (%u warps) but %u warps reached it",
                          r->bid.x, r->bid.y, r->bid.z, id, count, expected, arrived);
                return false;
            }
        }
        for (unsigned int t = 0; t < n; t++) {
            WeftFiber* f = &r->fibers[t];
            if (f->wait == WEFT_AT_BARRIER && f->bar_id == id) f->wait = WEFT_RUNNABLE;
        }
        return true;
    }
    return false;
}

// Why nothing can run: the most specific description of the waits.
static void weft_report_stuck(WeftBlockRun* r)
{
    const unsigned int n = r->threads;
    unsigned int exited = 0, at_shfl = 0, at_bar = 0;
    int named = -1, named_threads = 0;
    for (unsigned int t = 0; t < n; t++) {
        const WeftFiber* f = &r->fibers[t];
        exited += f->wait == WEFT_EXITED;
        at_shfl += f->wait == WEFT_AT_SHUFFLE;
        if (f->wait == WEFT_AT_BARRIER) {
            at_bar++;
            if (f->bar_threads >= 0) {
                named = f->bar_id;
                named_threads = f->bar_threads;
            }
        }
    }
    if (at_shfl == 0 && named >= 0) {
        unsigned int warps_here = 0;
        for (unsigned int lo = 0; lo < n; lo += 32) {
            bool here = false;
            for (unsigned int t = lo; t < n && t < lo + 32; t++) {
                here |= r->fibers[t].wait == WEFT_AT_BARRIER && r->fibers[t].bar_id == named;
            }
            warps_here += here;
        }
        weft_fail(WEFT_BARRIER_COUNT,
                  "block (%u, %u, %u): named barrier %d counts %d threads (%d warps) but only %u warps reached it; "
                  "%u threads have exited",
                  r->bid.x, r->bid.y, r->bid.z, named, named_threads, named_threads / 32, warps_here, exited);
        return;
    }
    weft_fail(WEFT_DEADLOCK,
              "block (%u, %u, %u): deadlock: %u threads wait at a barrier, %u at a shuffle, %u have exited, and no "
              "barrier or shuffle can complete",
              r->bid.x, r->bid.y, r->bid.z, at_bar, at_shfl, exited);
}

// Schedules: 0 forward, 1 reverse, 2 seeded random (redrawn every round).
extern "C" __attribute__((visibility("default"))) int weft_cpu_run_block(
    const void* slots, int nslots, void* const* args, unsigned int block_threads, unsigned long long pool_bytes,
    unsigned int physical_block, int schedule, unsigned long long seed, unsigned char fill, char* message,
    size_t message_len)
{
    WeftBlockRun run;
    run.slots = slots;
    run.nslots = nslots;
    run.args = args;
    run.threads = block_threads;
    run.pool_bytes = pool_bytes;
    run.fill = fill;
    run.bid = uint3{physical_block, 0, 0};
    run.current = nullptr;
#ifdef WEFT_ASAN
    run.fake_stack = nullptr;
#endif
    run.status = WEFT_OK;
    run.message = message;
    run.message_len = message_len;
    if (message_len > 0) message[0] = 0;
    WeftBlockRun* outer = weft_run;
    weft_run = &run;
    run.pool = weft_cpu_alloc(pool_bytes);
    run.fibers = (WeftFiber*)calloc(block_threads, sizeof(WeftFiber));
    std::vector<unsigned int> order(block_threads);
    unsigned int made = 0;
    if (run.pool == nullptr || run.fibers == nullptr) {
        weft_fail(WEFT_RESOURCE, "cannot allocate the block's fibers and shared pool");
    }
#ifdef WEFT_CPU_THREADS
    std::mutex lock;
    std::condition_variable back;
    std::vector<std::condition_variable> go(block_threads);
    run.lock = &lock;
    run.back = &back;
    run.turn = -1;
    run.cancel = false;
    pthread_attr_t attr;
    const bool attr_ok = pthread_attr_init(&attr) == 0 && pthread_attr_setstacksize(&attr, WEFT_STACK_BYTES) == 0;
    for (; run.status == WEFT_OK && made < block_threads; made++) {
        WeftFiber* f = &run.fibers[made];
        f->tid = uint3{made, 0, 0};
        f->wait = WEFT_RUNNABLE;
        f->run = &run;
        f->go = &go[made];
        if (!attr_ok || pthread_create(&f->thread, &attr, weft_fiber_thread, f) != 0) {
            weft_fail(WEFT_RESOURCE, "cannot start an OS thread of %zu stack bytes for thread %u of the block",
                      WEFT_STACK_BYTES, made);
            break;
        }
        order[made] = made;
    }
    if (attr_ok) pthread_attr_destroy(&attr);
#else
    for (; run.status == WEFT_OK && made < block_threads; made++) {
        WeftFiber* f = &run.fibers[made];
        f->tid = uint3{made, 0, 0};
        f->wait = WEFT_RUNNABLE;
        f->stack = weft_stack_take();
#ifdef WEFT_CPU_SWITCH
        if (f->stack == nullptr) {
            weft_fail(WEFT_RESOURCE, "cannot allocate a fiber stack of %zu bytes", WEFT_STACK_BYTES);
            break;
        }
        f->sp = weft_ctx_new(f->stack, weft_fiber_main);
#else
        if (f->stack == nullptr || getcontext(&f->ctx) != 0) {
            weft_fail(WEFT_RESOURCE, "cannot allocate a fiber stack of %zu bytes", WEFT_STACK_BYTES);
            break;
        }
        f->ctx.uc_stack.ss_sp = f->stack;
        f->ctx.uc_stack.ss_size = WEFT_STACK_BYTES;
        f->ctx.uc_link = nullptr;
        makecontext(&f->ctx, weft_fiber_main, 0);
#endif
        order[made] = made;
    }
#endif
    unsigned long long rng = seed ^ (0x51ed2701ull * (physical_block + 1ull));
    while (run.status == WEFT_OK) {
        if (schedule == 1) {
            for (unsigned int i = 0; i < block_threads; i++) order[i] = block_threads - 1 - i;
        } else if (schedule == 2) {
            for (unsigned int i = block_threads; i > 1; i--) {
                const unsigned int j = (unsigned int)(weft_next_random(&rng) % i);
                const unsigned int t = order[i - 1];
                order[i - 1] = order[j];
                order[j] = t;
            }
        }
        bool ran = false;
        for (unsigned int i = 0; i < block_threads && run.status == WEFT_OK; i++) {
            WeftFiber* f = &run.fibers[order[i]];
            if (f->wait == WEFT_RUNNABLE) {
                weft_switch_to(&run, f);
                ran = true;
            }
        }
        if (run.status != WEFT_OK) break;
        bool done = true;
        for (unsigned int t = 0; t < block_threads; t++) done &= run.fibers[t].wait == WEFT_EXITED;
        if (done) break;
        if (!weft_release(&run) && !ran && run.status == WEFT_OK) {
            weft_report_stuck(&run);
        }
    }
#ifdef WEFT_CPU_THREADS
    // Fibers stopped mid-kernel (after a fault) are resumed once to unwind
    // and exit; then every thread is joined.
    run.cancel = true;
    for (unsigned int t = 0; t < made; t++) {
        if (!run.fibers[t].finished) weft_switch_to(&run, &run.fibers[t]);
        pthread_join(run.fibers[t].thread, nullptr);
    }
#else
    // Fibers stopped mid-kernel are abandoned: their stacks hold nothing to
    // destroy, but are not reused.
    for (unsigned int t = 0; t < made; t++) {
        if (run.status == WEFT_OK && run.fibers[t].stack != nullptr) {
            weft_stacks.free.push_back(run.fibers[t].stack);
        } else {
            free(run.fibers[t].stack);
        }
    }
#endif
    free(run.fibers);
    for (size_t i = 0; i < run.arrays.size(); i++) free(run.arrays[i].ptr);
    for (size_t i = 0; i < run.views.size(); i++) free(run.views[i].ptr);
    free(run.pool);
    weft_run = outer;
    return run.status;
}

// ---- The checking mode's runner ---------------------------------------------
// Built as an executable under AddressSanitizer and UndefinedBehaviorSanitizer
// (which must own the process, so it cannot be loaded into the caller's).
// `runner LAUNCH OUT` reads a launch file written by crates/cpu/src/exec.rs:
//   u32 nslots, block_threads, total_blocks, schedule; u64 pool_bytes, seed;
//   u32 fill, nwords; table (nslots rows of 8 ints); nwords u64 words;
//   nwords u8 flags (1: the word is a buffer index); u32 nbuffers;
//   per buffer: u64 bytes, then the bytes.
// It gives every buffer its own allocation of exactly its size, runs the
// blocks in order, and writes the buffers back to OUT in the same layout.
// A fault is reported on stderr as `weft_cpu_fault block=B status=S: MESSAGE`
// with exit status 100 + S; a sanitizer reports and exits on its own.
#ifdef WEFT_CPU_MAIN
static bool weft_read(FILE* f, void* p, size_t n) { return n == 0 || fread(p, 1, n, f) == n; }

int main(int argc, char** argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s LAUNCH OUT\n", argv[0]);
        return 2;
    }
    // The watchdog's budget for the whole run, ns (unset: none).
    const char* budget = getenv("WEFT_DEADLINE_NS");
    weft_cpu_set_deadline(budget == nullptr ? 0ull : strtoull(budget, nullptr, 10));
    FILE* f = fopen(argv[1], "rb");
    if (f == nullptr) {
        perror(argv[1]);
        return 2;
    }
    unsigned int head[4];
    unsigned long long pool_bytes, seed;
    unsigned int fill, nwords, nbuffers;
    if (!weft_read(f, head, sizeof head) || !weft_read(f, &pool_bytes, 8) || !weft_read(f, &seed, 8) ||
        !weft_read(f, &fill, 4) || !weft_read(f, &nwords, 4)) {
        fprintf(stderr, "truncated launch file\n");
        return 2;
    }
    std::vector<int> table((size_t)head[0] * 8);
    std::vector<unsigned long long> words(nwords);
    std::vector<unsigned char> flags(nwords);
    if (!weft_read(f, table.data(), table.size() * 4) || !weft_read(f, words.data(), (size_t)nwords * 8) ||
        !weft_read(f, flags.data(), nwords) || !weft_read(f, &nbuffers, 4)) {
        fprintf(stderr, "truncated launch file\n");
        return 2;
    }
    std::vector<unsigned char*> buffers(nbuffers);
    std::vector<unsigned long long> sizes(nbuffers);
    for (unsigned int i = 0; i < nbuffers; i++) {
        if (!weft_read(f, &sizes[i], 8)) return 2;
        buffers[i] = (unsigned char*)malloc(sizes[i] == 0 ? 1 : sizes[i]);
        if (buffers[i] == nullptr || !weft_read(f, buffers[i], sizes[i])) {
            fprintf(stderr, "truncated launch file\n");
            return 2;
        }
    }
    fclose(f);
    std::vector<void*> args(nwords);
    for (unsigned int i = 0; i < nwords; i++) {
        args[i] = flags[i] ? (void*)buffers[words[i]] : (void*)(uintptr_t)words[i];
    }
    char message[1024];
    for (unsigned int b = 0; b < head[2]; b++) {
        const int status = weft_cpu_run_block(table.data(), (int)head[0], args.data(), head[1], pool_bytes, b,
                                              (int)head[3], seed, (unsigned char)fill, message, sizeof message);
        if (status != WEFT_OK) {
            fprintf(stderr, "weft_cpu_fault block=%u status=%d: %s\n", b, status, message);
            return 100 + status;
        }
    }
    FILE* out = fopen(argv[2], "wb");
    if (out == nullptr) {
        perror(argv[2]);
        return 2;
    }
    for (unsigned int i = 0; i < nbuffers; i++) {
        fwrite(&sizes[i], 8, 1, out);
        fwrite(buffers[i], 1, sizes[i], out);
        free(buffers[i]);
    }
    return fclose(out) == 0 ? 0 : 2;
}
#endif

#endif
