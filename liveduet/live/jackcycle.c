/* liveduet's JACK process callback in C: it never touches Python, so a busy interpreter (the
 * GIL held by another thread) cannot make it miss a cycle.  Built on first use by
 * liveduet/live/jackcycle.py; there are no JACK headers here, so the few libjack prototypes
 * are declared below.
 *
 * Each cycle it
 *  - copies every input port's events into an SPSC input ring (frame, port, bytes), counting
 *    those a full ring refuses and those longer than IN_BYTES;
 *  - moves the records Python put in each output port's SPSC ring into that port's pending
 *    array and writes those due in this cycle at their offsets, in (frame, arrival) order
 *    (a past frame goes at offset 0 and counts as late);
 *  - keeps (cycle start frame, CLOCK_MONOTONIC ns at callback entry, frames since the cycle
 *    start) of the last CYCLES cycles, which Python turns into its frame <-> perf_counter map.
 * Python is the only producer of the output rings and the only consumer of the input ring.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef uint32_t jack_nframes_t;
typedef struct { jack_nframes_t time; size_t size; uint8_t *buffer; } jack_midi_event_t;
void *jack_port_get_buffer(void *port, jack_nframes_t frames);
uint32_t jack_midi_get_event_count(void *buf);
int jack_midi_event_get(jack_midi_event_t *event, void *buf, uint32_t index);
void jack_midi_clear_buffer(void *buf);
int jack_midi_event_write(void *buf, jack_nframes_t time, const uint8_t *data, size_t size);
jack_nframes_t jack_last_frame_time(void *client);
jack_nframes_t jack_frames_since_cycle_start(void *client);
int jack_set_process_callback(void *client, int (*cb)(jack_nframes_t, void *), void *arg);

#define MAX_IN 16
#define MAX_OUT 4
#define IN_RECORDS 16384     /* power of two: ~16 s of a 1,000 events/s flood */
#define IN_BYTES 10
#define OUT_RECORDS 8192     /* power of two, per output port */
#define PENDING 4096         /* handed over ahead, not yet due, per output port */
#define CYCLES 16            /* power of two */
#define WAITS 8192
#define NOW_FLAG 0x80

typedef struct { uint32_t frame; uint8_t port, len; uint8_t data[IN_BYTES]; } in_rec;
typedef struct { uint32_t frame; uint8_t len; uint8_t data[3]; } out_rec;
typedef struct { uint32_t frame; uint32_t order; uint8_t len; uint8_t data[3]; } pend_rec;
typedef struct { uint32_t start; uint32_t since; int64_t ns; } cycle_rec;

typedef struct {
    void *port;
    out_rec ring[OUT_RECORDS];
    uint32_t head, tail;            /* head: Python writes; tail: the callback */
    pend_rec pending[PENDING];
    uint32_t npending, order;
    uint64_t late;
} out_port;

typedef struct {
    void *client;
    uint32_t nin, nout;             /* published after the port pointer is stored */
    void *in_ports[MAX_IN];
    out_port outs[MAX_OUT];
    in_rec in_ring[IN_RECORDS];
    uint32_t in_head, in_tail;      /* head: the callback writes; tail: Python */
    uint64_t in_dropped, in_oversize;
    cycle_rec cycles[CYCLES];
    uint64_t ncycles;               /* published after the cycle record is stored */
    uint32_t waits[WAITS];
} lc_state;

size_t lc_size(void) { return sizeof(lc_state); }
uint32_t lc_max_in(void) { return MAX_IN; }
uint32_t lc_max_out(void) { return MAX_OUT; }

static int32_t sdiff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

static int ends(const uint8_t *m, uint8_t n) {
    if (n < 3) return 0;
    uint8_t kind = m[0] & 0xF0;
    return kind == 0x80 || (kind == 0x90 && m[2] == 0) ||
           (kind == 0xB0 && (m[1] == 120 || m[1] == 123));
}

/* The frame for a note-off (or CC 120/123) sent now: after the latest pending note-on it
 * ends, else the cycle's start, so a stop or a panic never leaves a note hanging. */
static uint32_t after(const out_port *o, const uint8_t *m, uint32_t start) {
    int every = (m[0] & 0xF0) == 0xB0, found = 0;
    int32_t best = 0;
    for (uint32_t i = 0; i < o->npending; i++) {
        const pend_rec *p = &o->pending[i];
        if (p->len == 3 && (p->data[0] & 0xF0) == 0x90 && p->data[2] > 0 &&
            (p->data[0] & 0x0F) == (m[0] & 0x0F) && (every || p->data[1] == m[1])) {
            int32_t d = sdiff(p->frame, start);
            if (!found || d > best) { best = d; found = 1; }
        }
    }
    return found ? start + (uint32_t)best : start;
}

static void process_out(out_port *o, uint32_t start, jack_nframes_t frames) {
    void *buf = jack_port_get_buffer(o->port, frames);
    jack_midi_clear_buffer(buf);
    uint32_t tail = o->tail, head = __atomic_load_n(&o->head, __ATOMIC_ACQUIRE);
    while (tail != head && o->npending < PENDING) {
        const out_rec *r = &o->ring[tail & (OUT_RECORDS - 1)];
        pend_rec *p = &o->pending[o->npending++];
        p->len = r->len & 0x7F;
        memcpy(p->data, r->data, 3);
        p->order = ++o->order;
        p->frame = r->frame;
        if (r->len & NOW_FLAG) {
            o->npending--;   /* not among the pending note-ons it is placed after */
            p->frame = ends(p->data, p->len) ? after(o, p->data, start) : start;
            o->npending++;
        }
        tail++;
    }
    __atomic_store_n(&o->tail, tail, __ATOMIC_RELEASE);
    /* The due ones, sorted by (offset, order) in place at the front; the rest keep after. */
    uint32_t ndue = 0;
    for (uint32_t i = 0; i < o->npending; i++) {
        if (sdiff(o->pending[i].frame, start) < (int32_t)frames) {
            pend_rec due = o->pending[i];
            o->pending[i] = o->pending[ndue];
            uint32_t j = ndue++;
            int32_t off = sdiff(due.frame, start);
            while (j > 0) {
                int32_t prev = sdiff(o->pending[j - 1].frame, start);
                if (prev < off || (prev == off && o->pending[j - 1].order < due.order)) break;
                o->pending[j] = o->pending[j - 1];
                j--;
            }
            o->pending[j] = due;
        }
    }
    int32_t last = 0;
    for (uint32_t i = 0; i < ndue; i++) {
        const pend_rec *p = &o->pending[i];
        int32_t off = sdiff(p->frame, start);
        if (off < 0) { o->late++; off = 0; }
        if (off > last) last = off;   /* JACK wants event times in order */
        jack_midi_event_write(buf, (jack_nframes_t)last, p->data, p->len);
    }
    if (ndue) {
        memmove(o->pending, o->pending + ndue, (o->npending - ndue) * sizeof(pend_rec));
        o->npending -= ndue;
    }
}

static int lc_process(jack_nframes_t frames, void *arg) {
    lc_state *s = arg;
    struct timespec ts;
    uint32_t since = jack_frames_since_cycle_start(s->client);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint32_t start = jack_last_frame_time(s->client);
    uint64_t n = s->ncycles;
    cycle_rec *c = &s->cycles[n & (CYCLES - 1)];
    c->start = start;
    c->since = since;
    c->ns = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    s->waits[n % WAITS] = since;
    __atomic_store_n(&s->ncycles, n + 1, __ATOMIC_RELEASE);

    uint32_t nin = __atomic_load_n(&s->nin, __ATOMIC_ACQUIRE);
    uint32_t head = s->in_head, tail = __atomic_load_n(&s->in_tail, __ATOMIC_ACQUIRE);
    for (uint32_t idx = 0; idx < nin; idx++) {
        void *buf = jack_port_get_buffer(s->in_ports[idx], frames);
        uint32_t count = jack_midi_get_event_count(buf);
        for (uint32_t i = 0; i < count; i++) {
            jack_midi_event_t ev;
            if (jack_midi_event_get(&ev, buf, i)) break;
            if (ev.size == 0 || ev.size > IN_BYTES) { s->in_oversize++; continue; }
            if (head - tail >= IN_RECORDS) { s->in_dropped++; continue; }
            in_rec *r = &s->in_ring[head & (IN_RECORDS - 1)];
            r->frame = start + ev.time;
            r->port = (uint8_t)idx;
            r->len = (uint8_t)ev.size;
            memcpy(r->data, ev.buffer, ev.size);
            head++;
        }
    }
    __atomic_store_n(&s->in_head, head, __ATOMIC_RELEASE);

    uint32_t nout = __atomic_load_n(&s->nout, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < nout; i++) process_out(&s->outs[i], start, frames);
    return 0;
}

/* Before jack_activate: the client's process callback is this one. */
int lc_install(lc_state *s, void *client) {
    memset(s, 0, sizeof *s);
    s->client = client;
    return jack_set_process_callback(client, lc_process, s);
}

int lc_add_in(lc_state *s, void *port) {
    uint32_t n = s->nin;
    if (n >= MAX_IN) return -1;
    s->in_ports[n] = port;
    __atomic_store_n(&s->nin, n + 1, __ATOMIC_RELEASE);
    return (int)n;
}

int lc_add_out(lc_state *s, void *port) {
    uint32_t n = s->nout;
    if (n >= MAX_OUT) return -1;
    s->outs[n].port = port;
    __atomic_store_n(&s->nout, n + 1, __ATOMIC_RELEASE);
    return (int)n;
}

/* Python's side (one writer at a time, under its lock): all n records or none (returns 0). */
int lc_put(lc_state *s, uint32_t idx, uint32_t n, const uint32_t *frames, const uint8_t *lens,
           const uint8_t *data) {
    out_port *o = &s->outs[idx];
    uint32_t head = o->head, tail = __atomic_load_n(&o->tail, __ATOMIC_ACQUIRE);
    if (OUT_RECORDS - (head - tail) < n) return 0;
    for (uint32_t i = 0; i < n; i++) {
        out_rec *r = &o->ring[(head + i) & (OUT_RECORDS - 1)];
        r->frame = frames[i];
        r->len = lens[i];
        memcpy(r->data, data + 3 * i, 3);
    }
    __atomic_store_n(&o->head, head + n, __ATOMIC_RELEASE);
    return 1;
}

/* Copy up to max input records out (frames, ports, lens, data: IN_BYTES each); the count. */
uint32_t lc_take(lc_state *s, uint32_t max, uint32_t *frames, uint8_t *ports, uint8_t *lens,
                 uint8_t *data) {
    uint32_t tail = s->in_tail, head = __atomic_load_n(&s->in_head, __ATOMIC_ACQUIRE), n = 0;
    while (tail != head && n < max) {
        const in_rec *r = &s->in_ring[tail & (IN_RECORDS - 1)];
        frames[n] = r->frame;
        ports[n] = r->port;
        lens[n] = r->len;
        memcpy(data + IN_BYTES * n, r->data, IN_BYTES);
        n++;
        tail++;
    }
    __atomic_store_n(&s->in_tail, tail, __ATOMIC_RELEASE);
    return n;
}

/* The last k cycles (k <= CYCLES - 2, oldest first): starts, since, ns; the cycle count. */
uint64_t lc_cycles(lc_state *s, uint32_t k, uint32_t *starts, uint32_t *since, int64_t *ns) {
    for (;;) {
        uint64_t n = __atomic_load_n(&s->ncycles, __ATOMIC_ACQUIRE);
        if (n == 0) return 0;
        uint32_t got = n < k ? (uint32_t)n : k;
        for (uint32_t i = 0; i < got; i++) {
            const cycle_rec *c = &s->cycles[(n - got + i) & (CYCLES - 1)];
            starts[i] = c->start;
            since[i] = c->since;
            ns[i] = c->ns;
        }
        /* a cycle run meanwhile may have overwritten a slot only if two ran: read again */
        if (__atomic_load_n(&s->ncycles, __ATOMIC_ACQUIRE) - n < CYCLES - k) return n;
    }
}

uint64_t lc_late(lc_state *s, uint32_t idx) { return s->outs[idx].late; }
uint64_t lc_in_dropped(lc_state *s) { return s->in_dropped; }
uint64_t lc_in_oversize(lc_state *s) { return s->in_oversize; }
const uint32_t *lc_waits(lc_state *s) { return s->waits; }
