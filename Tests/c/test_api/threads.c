/*
 * threads.c — the header's thread rules: the last error is per thread (fresh threads, concurrent
 * failures); 8 threads running one compiled handle at once, bitwise equal to a single-threaded run;
 * two handles in parallel; OpenBLAS's process-wide thread count stays at one while two handles run
 * on two threads (a third thread watching it); the first load stops OpenBLAS's idle workers.
 */
#include "test_api.h"

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct fresh_thread_t {
  char path[256];
  int empty_before; /* last_error was "" on entry */
  int status_ok;    /* the failing call returned IO */
  int msg_has_path; /* its message contains the path */
} fresh_thread_t;

static void *fresh_thread_main(void *arg) {
  fresh_thread_t *t = (fresh_thread_t *)arg;
  sam3_neck *h = NULL;
  const char *e = sam3_neck_last_error();
  sam3_neck_status st;
  t->empty_before = (e != NULL && e[0] == '\0');
  st = sam3_neck_load_file(t->path, NULL, &h);
  t->status_ok = (st == SAM3_NECK_ERR_IO && h == NULL);
  e = sam3_neck_last_error();
  t->msg_has_path = (e != NULL && strstr(e, t->path) != NULL);
  sam3_neck_free(h);
  return NULL;
}

typedef struct err_stress_t {
  int id;
  int iterations;
  int bad; /* iterations where the thread's own message was not its own */
} err_stress_t;

static void *err_stress_main(void *arg) {
  err_stress_t *t = (err_stress_t *)arg;
  int i;
  for (i = 0; i < t->iterations; i++) {
    char path[128];
    sam3_neck *h = NULL;
    sam3_neck_status st;
    const char *e;
    snprintf(path, sizeof path, "/nonexistent-sam3neck/thread-%d-iter-%d.safetensors", t->id, i);
    st = sam3_neck_load_file(path, NULL, &h);
    e = sam3_neck_last_error();
    if (st != SAM3_NECK_ERR_IO || e == NULL || strstr(e, path) == NULL) {
      t->bad++;
    }
    sam3_neck_free(h);
  }
  return NULL;
}

void test_last_error_threads(void) {
  fresh_thread_t ft;
  pthread_t th;
  char saved[1024];
  const char *missing = "/nonexistent-sam3neck/main-thread.safetensors";
  sam3_neck *h = NULL;
  sam3_neck_status st;
  err_stress_t stress[4];
  pthread_t sth[4];
  int i, created;

  /* a fresh thread: "" before any failure, non-empty (naming the path) after one */
  memset(&ft, 0, sizeof ft);
  snprintf(ft.path, sizeof ft.path, "/nonexistent-sam3neck/fresh-thread.safetensors");
  if (check(pthread_create(&th, NULL, fresh_thread_main, &ft) == 0, "pthread_create (fresh)")) {
    pthread_join(th, NULL);
    check(ft.empty_before, "last_error() == \"\" on a fresh thread before any failure");
    check(ft.status_ok, "fresh thread: load_file(missing) -> IO, *out NULL");
    check(ft.msg_has_path, "fresh thread: last_error() names the missing path after the failure");
  }

  /* this thread's message is not affected by another thread's failure */
  st = sam3_neck_load_file(missing, NULL, &h);
  check_err_msg(st, SAM3_NECK_ERR_IO, missing, "main thread: load_file(missing)");
  snprintf(saved, sizeof saved, "%s", sam3_neck_last_error());
  memset(&ft, 0, sizeof ft);
  snprintf(ft.path, sizeof ft.path, "/nonexistent-sam3neck/other-thread.safetensors");
  if (check(pthread_create(&th, NULL, fresh_thread_main, &ft) == 0, "pthread_create (other)")) {
    pthread_join(th, NULL);
    check(ft.empty_before, "a new thread sees \"\" although the main thread has failed");
    check(ft.msg_has_path && ft.status_ok, "the other thread sees its own failure");
  }
  check(strcmp(sam3_neck_last_error(), saved) == 0,
        "main thread's last_error() unchanged by the other thread's failure (\"%s\")", sam3_neck_last_error());

  /* concurrent failures: each thread always sees its own message */
  created = 0;
  for (i = 0; i < 4; i++) {
    stress[i].id = i;
    stress[i].iterations = 200;
    stress[i].bad = 0;
    if (pthread_create(&sth[i], NULL, err_stress_main, &stress[i]) != 0) {
      break;
    }
    created++;
  }
  check(created == 4, "pthread_create x4 (error stress)");
  for (i = 0; i < created; i++) {
    pthread_join(sth[i], NULL);
    check(stress[i].bad == 0, "error stress thread %d: own message in every one of 200 concurrent failures (%d bad)", i,
          stress[i].bad);
  }
  check(strcmp(sam3_neck_last_error(), saved) == 0,
        "main thread's last_error() unchanged by 800 concurrent failures elsewhere");
}

/* A thread running one handle `runs` times, comparing each run bitwise with `expect` or, when
 * that is NULL, with the float64 references (SAM3_NECK_BOUND_STRICT: the plans are strict). */
typedef struct run_thread_t {
  sam3_neck *neck;
  const fixture_t *fixture;
  const outs_t *expect; /* bitwise expectation (NULL: use the references) */
  int runs;
  int failures;   /* runs that did not return OK */
  int mismatches; /* runs whose output differed */
  int last_status;
} run_thread_t;

static void *run_thread_main(void *arg) {
  run_thread_t *t = (run_thread_t *)arg;
  const fixture_t *f = t->fixture;
  outs_t o;
  int r;
  outs_alloc(&o, &f->meta, 0xF);
  for (r = 0; r < t->runs; r++) {
    sam3_neck_status st = run_outs(t->neck, f->input, f->input_count, &o);
    t->last_status = (int)st;
    if (st != SAM3_NECK_OK) {
      t->failures++;
    } else if (t->expect != NULL ? !outs_equal(&o, t->expect) : !outs_within(&o, f->refs, SAM3_NECK_BOUND_STRICT)) {
      t->mismatches++;
    }
  }
  outs_free(&o);
  return NULL;
}

/* Starts `n` runner threads, thread i on handles[i % nhandles]; returns how many started (they are
 * th[0 .. started - 1]). */
static int start_runners(pthread_t *th, run_thread_t *jobs, int n, sam3_neck *const *handles, int nhandles,
                         const fixture_t *f, const outs_t *expect, int runs) {
  int i;
  for (i = 0; i < n; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].neck = handles[i % nhandles];
    jobs[i].fixture = f;
    jobs[i].expect = expect;
    jobs[i].runs = runs;
  }
  for (i = 0; i < n; i++) {
    if (pthread_create(&th[i], NULL, run_thread_main, &jobs[i]) != 0) {
      break;
    }
  }
  return i;
}

/* Threads that hammer one compiled handle at once (the header: concurrent runs are safe). */
#define HAMMER_THREADS 8

void test_threads(sam3_neck *h, sam3_neck *h2, const fixture_t *f) {
  sam3_neck_compile_params cp = fixture_params(&f->meta, SAM3_NECK_LAYOUT_NCHW, 0xF);
  sam3_neck *const both[2] = {h, h2};
  outs_t single;
  run_thread_t jobs[HAMMER_THREADS];
  pthread_t th[HAMMER_THREADS];
  int i, created;

  if (!check_ok(sam3_neck_compile(h, &cp), "threads: compile")) {
    return;
  }
  outs_alloc(&single, &f->meta, 0xF);
  if (!check_ok(run_outs(h, f->input, f->input_count, &single), "threads: single-threaded run")) {
    outs_free(&single);
    return;
  }
  created = start_runners(th, jobs, HAMMER_THREADS, &h, 1, f, &single, 3);
  check(created == HAMMER_THREADS, "threads: pthread_create x%d on one handle", HAMMER_THREADS);
  for (i = 0; i < created; i++) {
    pthread_join(th[i], NULL);
    check(jobs[i].failures == 0, "thread %d: 3 concurrent runs on one handle returned OK (last %d)", i,
          jobs[i].last_status);
    check(jobs[i].mismatches == 0, "thread %d: outputs bitwise equal to the single-threaded run (%d mismatching runs)",
          i, jobs[i].mismatches);
  }

  /* two handles, two threads each, concurrently */
  if (h2 != NULL && check_ok(sam3_neck_compile(h2, &cp), "threads: compile second handle")) {
    created = start_runners(th, jobs, 4, both, 2, f, NULL, 3);
    check(created == 4, "threads: pthread_create x4 on two handles");
    for (i = 0; i < created; i++) {
      pthread_join(th[i], NULL);
      check(jobs[i].failures == 0 && jobs[i].mismatches == 0,
            "thread %d (handle %d): 3 concurrent runs OK and within SAM3_NECK_BOUND_STRICT of the reference "
            "(%d failures, %d mismatches)",
            i, i % 2, jobs[i].failures, jobs[i].mismatches);
    }
  }
  outs_free(&single);
}

/* OpenBLAS's thread count, the one process-wide setting the library touches (include/sam3_neck.h,
 * Threads): loading sets it to 1 and nothing restores it, so two handles running at once on two
 * threads cannot leave each other's OpenBLAS multi-threaded. A third thread watches the setting
 * while they run. The functions are looked up in the process (libsam3neck.so brought OpenBLAS). */
typedef int (*blas_get_fn)(void);
typedef void (*blas_set_fn)(int);

typedef struct {
  blas_get_fn get;
  pthread_mutex_t lock; /* guards the fields below */
  int stop;
  int polls, max_seen;
} blas_watch_t;

static void *blas_watch_main(void *arg) {
  blas_watch_t *w = (blas_watch_t *)arg;
  int stop = 0;
  while (!stop) {
    int n = w->get();
    pthread_mutex_lock(&w->lock);
    if (n > w->max_seen) {
      w->max_seen = n;
    }
    w->polls++;
    stop = w->stop;
    pthread_mutex_unlock(&w->lock);
  }
  return NULL;
}

static int blas_watch_polls(blas_watch_t *w) {
  int polls;
  pthread_mutex_lock(&w->lock);
  polls = w->polls;
  pthread_mutex_unlock(&w->lock);
  return polls;
}

/* Threads of this process, or -1. */
static int process_threads(void) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  int n = 0;
  if (d == NULL) {
    return -1;
  }
  while ((e = readdir(d)) != NULL) {
    n += e->d_name[0] != '.';
  }
  closedir(d);
  return n;
}

/* OpenBLAS (pthreads build) starts count - 1 workers when it is loaded, which spin before they
 * sleep; the process's first load stops them (include/sam3_neck.h, Threads). Call before any load.
 * Their exit is asynchronous: wait up to 5 s for the process to lose them. */
void test_openblas_idle_workers(const fixture_t *f) {
  void *self = dlopen(NULL, RTLD_NOW);
  blas_get_fn get = NULL;
  sam3_neck *h = NULL;
  char *p;
  int workers, before, now, waited;

  if (!check(self != NULL, "openblas workers: dlopen(NULL)")) {
    return;
  }
  {
    void *g = dlsym(self, "openblas_get_num_threads");
    memcpy(&get, &g, sizeof get);
  }
  dlclose(self);
  if (!check(get != NULL, "openblas workers: openblas_get_num_threads found in the process")) {
    return;
  }
  workers = get() - 1;
  before = process_threads();
  p = join_path(f->dir, "tiny.safetensors");
  check_ok(sam3_neck_load_file(p, NULL, &h), "openblas workers: first load");
  free(p);
  now = process_threads();
  for (waited = 0; workers > 0 && now > before - workers && waited < 500; waited++) {
    struct timespec ms10 = {0, 10000000};
    nanosleep(&ms10, NULL);
    now = process_threads();
  }
  check(before > 0 && now <= before - workers,
        "openblas workers: the first load stops OpenBLAS's %d idle worker(s) (threads %d before, %d after)", workers,
        before, now);
  sam3_neck_free(h);
}

void test_openblas_setting(sam3_neck *h, sam3_neck *h2, const fixture_t *f) {
  void *self = dlopen(NULL, RTLD_NOW);
  blas_get_fn get = NULL;
  blas_set_fn set = NULL;
  sam3_neck *fresh = NULL;
  sam3_neck *const both[2] = {h, h2};
  run_thread_t jobs[2];
  pthread_t th[2], watcher;
  blas_watch_t watch;
  char *p;
  int i, created, round, host;

  if (!check(self != NULL, "openblas: dlopen(NULL)")) {
    return;
  }
  /* Object-to-function pointer conversion through memcpy: valid C99 under -pedantic. */
  {
    void *g = dlsym(self, "openblas_get_num_threads"), *s = dlsym(self, "openblas_set_num_threads");
    memcpy(&get, &g, sizeof get);
    memcpy(&set, &s, sizeof set);
  }
  if (!check(get != NULL && set != NULL, "openblas: openblas_{get,set}_num_threads found in the process")) {
    dlclose(self);
    return;
  }
  /* An application that runs OpenBLAS threaded itself, then loads a neck. */
  set(2);
  host = get();
  p = join_path(f->dir, "tiny.safetensors");
  if (check_ok(sam3_neck_load_file(p, NULL, &fresh), "openblas: load a fresh handle")) {
    check(get() == 1, "openblas: loading sets OpenBLAS to one thread (application had %d, now %d)", host, get());
  }
  free(p);
  sam3_neck_free(fresh);
  /* Two handles on two threads, a few rounds, a third thread watching the setting throughout. */
  memset(&watch, 0, sizeof watch);
  pthread_mutex_init(&watch.lock, NULL);
  watch.get = get;
  if (!check(pthread_create(&watcher, NULL, blas_watch_main, &watch) == 0, "openblas: start the watcher")) {
    dlclose(self);
    return;
  }
  while (blas_watch_polls(&watch) == 0) { /* the watcher is running before the runs start */
    sched_yield();
  }
  for (round = 0; round < 3; round++) {
    created = start_runners(th, jobs, 2, both, 2, f, NULL, 2);
    for (i = 0; i < created; i++) {
      pthread_join(th[i], NULL);
      check(jobs[i].failures == 0 && jobs[i].mismatches == 0,
            "openblas: round %d, handle %d: runs OK and within SAM3_NECK_BOUND_STRICT of the reference", round, i);
    }
    check(created == 2, "openblas: round %d: two runner threads", round);
  }
  pthread_mutex_lock(&watch.lock);
  watch.stop = 1;
  pthread_mutex_unlock(&watch.lock);
  pthread_join(watcher, NULL);
  pthread_mutex_destroy(&watch.lock);
  check(watch.polls > 0 && watch.max_seen == 1,
        "openblas: the watcher saw one OpenBLAS thread throughout two handles' concurrent runs "
        "(%d polls, at most %d)",
        watch.polls, watch.max_seen);
  dlclose(self);
}
