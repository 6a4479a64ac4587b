/* bench/partition writer: one libpq connection inserting one row into event_log every
 * INTERVAL_MS (default 5) until SIGTERM/SIGINT, then prints one JSON line with what it saw:
 *   {"ok": N, "failed": N, "late": N, "max_ms": X, "p99_ms": X, "p50_ms": X, "errors": [...]}
 * Every LATE_EVERY-th row (default 20) is a late row, 40 days in the past (an earlier month).
 * Latency = wall time of the INSERT round trip (including any lock wait).
 * A failed INSERT is counted and the connection re-established if it was lost.
 * Usage: writer "CONNINFO" [INTERVAL_MS] [LATE_EVERY]        (build: cc -O2 writer.c -lpq) */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop = 0;
static void on_sig(int s) { (void)s; stop = 1; }

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static void json_str(const char* s) {
  putchar('"');
  for (; *s; ++s) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if (*s == '\n') { fputs("\\n", stdout); continue; }
    putchar(*s);
  }
  putchar('"');
}

int main(int argc, char** argv) {
  if (argc < 2) { fprintf(stderr, "usage: writer CONNINFO [INTERVAL_MS] [LATE_EVERY]\n"); return 64; }
  double interval = argc > 2 ? atof(argv[2]) : 5;
  int late_every = argc > 3 ? atoi(argv[3]) : 20;
  signal(SIGTERM, on_sig);
  signal(SIGINT, on_sig);
  PGconn* c = PQconnectdb(argv[1]);
  if (PQstatus(c) != CONNECTION_OK) { fprintf(stderr, "writer: %s", PQerrorMessage(c)); return 69; }
  size_t cap = 1 << 20, n = 0;
  double* lat = malloc(cap * sizeof(double));
  long ok = 0, failed = 0, late = 0;
  char errors[5][256];
  int nerr = 0;
  double next = now_ms();
  fprintf(stderr, "writer: ready\n");
  for (long i = 0; !stop; ++i) {
    int is_late = late_every > 0 && i % late_every == 0;
    const char* sql = is_late
        ? "INSERT INTO event_log (created_at, kind, payload) VALUES (now() - interval '40 days', 'bench-late', '{\"w\": 1}')"
        : "INSERT INTO event_log (created_at, kind, payload) VALUES (now(), 'bench', '{\"w\": 1}')";
    double t0 = now_ms();
    PGresult* r = PQexec(c, sql);
    double dt = now_ms() - t0;
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      ++ok;
      if (is_late) ++late;
    } else {
      ++failed;
      if (nerr < 5) snprintf(errors[nerr++], sizeof errors[0], "%s", PQerrorMessage(c));
      if (PQstatus(c) != CONNECTION_OK) PQreset(c);
    }
    PQclear(r);
    if (n == cap) { cap *= 2; lat = realloc(lat, cap * sizeof(double)); }
    lat[n++] = dt;
    next += interval;
    double wait = next - now_ms();
    if (wait > 0) {
      struct timespec ts = {(time_t)(wait / 1000), (long)((wait - (time_t)(wait / 1000) * 1000) * 1e6)};
      nanosleep(&ts, NULL);
    } else {
      next = now_ms();  /* behind schedule (after a stall): restart the cadence */
    }
  }
  qsort(lat, n, sizeof(double), cmp);
  double mx = n ? lat[n - 1] : 0, p99 = n ? lat[(size_t)(n * 0.99)] : 0, p50 = n ? lat[n / 2] : 0;
  printf("{\"ok\": %ld, \"failed\": %ld, \"late\": %ld, \"max_ms\": %.2f, \"p99_ms\": %.2f, \"p50_ms\": %.2f, \"errors\": [",
         ok, failed, late, mx, p99, p50);
  for (int e = 0; e < nerr; ++e) { if (e) printf(", "); json_str(errors[e]); }
  printf("]}\n");
  PQfinish(c);
  return 0;
}
