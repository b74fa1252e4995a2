/*
 * client_example.c: the integrator's reference client for cfm's ZeroMQ wire protocol v1,
 * in C99 with libzmq only (no JSON library). It shares no code with cfm: everything it does
 * follows docs/protocol.md.
 *
 * It sends N synthetic frames (a tilted table with a box on it, rgb8 + xyz_f32le), reads
 * the results and heartbeats, prints one line per verdict and per heartbeat, notices gaps
 * in the results' `seq`, and exits 0 once every frame it sent has exactly one result.
 *
 *     cc -std=c99 -Wall -Wextra -Werror tools/client_example.c -lzmq -o client_example
 *
 *     # daemon: input {pattern: pull, mode: bind, endpoint: tcp://127.0.0.1:5555}, output as default
 *     ./client_example --frames 10
 *     # daemon as shipped (input: sub, connect): this client binds a PUB socket
 *     ./client_example --pub --bind --frames 10
 *     # scale-out (docs/protocol.md, "Scale-out"): bind the sensor PUSH and a collector PULL;
 *     # several daemons PULL frames from the first and PUSH results to the second
 *     ./client_example --bind --collect --frames 40
 *
 * Messages (docs/protocol.md has every field and rule):
 *   frame     = [topic, header JSON, RGB bytes W*H*3, XYZ float32 little-endian W*H*3]
 *   result    = ["<prefix>.pass|reject|error|dropped", result JSON]
 *   heartbeat = ["<prefix>.heartbeat", heartbeat JSON]
 *
 * Exit status: 0 every frame answered exactly once; 1 bad usage or a socket error;
 * 2 results missing at the timeout (or no daemon took a frame); 3 a frame answered more than once.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

/* ---- options ---------------------------------------------------------------------- */

struct options {
    const char *endpoint;      /* the daemon's input.endpoint */
    const char *results;       /* the daemon's output.endpoint */
    const char *topic;         /* frame topic (the daemon's input.topic, SUB input only) */
    const char *prefix;        /* the daemon's output.topic_prefix */
    int pub;                   /* send with PUB (daemon input: sub) instead of PUSH (daemon input: pull) */
    int bind;                  /* bind the frame socket instead of connecting it */
    int collect;               /* results on a bound PULL socket (daemons PUSH to it) instead of a SUB */
    int frames;                /* frames to send */
    int width, height;         /* frame size in pixels */
    double warmup_s;           /* seconds for connections and subscriptions to form */
    double timeout_s;          /* seconds to wait for the last result after the last frame */
};

static void usage(const char *program)
{
    fprintf(stderr,
            "usage: %s [--endpoint E] [--results E] [--pub] [--bind] [--collect] [--frames N]\n"
            "          [--size WxH] [--topic T] [--prefix P] [--warmup S] [--timeout S]\n"
            "  --endpoint E  frame endpoint, the daemon's input.endpoint (default tcp://127.0.0.1:5555)\n"
            "  --results E   result endpoint, the daemon's output.endpoint (default tcp://127.0.0.1:5556)\n"
            "  --pub         send frames with PUB (daemon input.pattern: sub); default PUSH (pull)\n"
            "  --bind        bind the frame socket (daemon input.mode: connect); default connect\n"
            "  --collect     bind a PULL for results (daemons: output.pattern push, mode connect);\n"
            "                default SUB connected to the daemon's PUB\n"
            "  --frames N    frames to send (default 5); --size WxH (default 160x120)\n"
            "  --timeout S   seconds to wait for results after the last frame (default 30)\n",
            program);
}

static int parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){"tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556", "frame", "result",
                          0, 0, 0, 5, 160, 120, 0.5, 30.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pub")) o->pub = 1;
        else if (!strcmp(a, "--bind")) o->bind = 1;
        else if (!strcmp(a, "--collect")) o->collect = 1;
        else if (v && !strcmp(a, "--endpoint")) { o->endpoint = v; i++; }
        else if (v && !strcmp(a, "--results")) { o->results = v; i++; }
        else if (v && !strcmp(a, "--topic")) { o->topic = v; i++; }
        else if (v && !strcmp(a, "--prefix")) { o->prefix = v; i++; }
        else if (v && !strcmp(a, "--frames")) { o->frames = atoi(v); i++; }
        else if (v && !strcmp(a, "--warmup")) { o->warmup_s = atof(v); i++; }
        else if (v && !strcmp(a, "--timeout")) { o->timeout_s = atof(v); i++; }
        else if (v && !strcmp(a, "--size")) {
            if (sscanf(v, "%dx%d", &o->width, &o->height) != 2) return -1;
            i++;
        } else return -1;
    }
    if (o->frames < 1 || o->width < 16 || o->height < 16 || o->width > 4096 || o->height > 4096) return -1;
    return 0;
}

/* ---- time --------------------------------------------------------------------------- */

static double monotonic_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long long wall_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void sleep_s(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* ---- a synthetic frame ---------------------------------------------------------------- */

/* Appends a float32 in little-endian byte order, whatever the host's order. */
static unsigned char *put_f32le(unsigned char *p, float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    for (int b = 0; b < 4; b++) *p++ = (unsigned char)(bits >> (8 * b));
    return p;
}

/*
 * A table 0.5 m from the camera, tilted 3 degrees, with a 20 mm high box on it covering the
 * middle fifth of the image, 1.2 mm per pixel; the box is light brown on a dark table.
 * rgb: width*height*3 bytes (rgb8); xyz: width*height*12 bytes (xyz_f32le, metres).
 */
static void synthetic_frame(int width, int height, unsigned char *rgb, unsigned char *xyz)
{
    for (int r = 0; r < height; r++) {
        for (int c = 0; c < width; c++) {
            float x = (float)(c - width / 2) * 0.0012f, y = (float)(r - height / 2) * 0.0012f;
            int box = abs(c - width / 2) < width / 5 && abs(r - height / 2) < height / 5;
            float z = 0.5f + 0.05f * x - (box ? 0.02f : 0.0f);
            unsigned char *px = rgb + 3 * ((size_t)r * width + c);
            px[0] = box ? 180 : (unsigned char)(90 + 40 * c / width);
            px[1] = box ? 140 : 80;
            px[2] = box ? 90 : 70;
            unsigned char *p = xyz + 12 * ((size_t)r * width + c);
            p = put_f32le(p, x);
            p = put_f32le(p, y);
            put_f32le(p, z);
        }
    }
}

/* Sends one frame message: [topic, header, rgb, xyz]. Returns 0 or -1 (errno set by libzmq). */
static int send_frame(void *socket, const struct options *o, const char *frame_id,
                      const unsigned char *rgb, const unsigned char *xyz)
{
    char header[512];
    snprintf(header, sizeof header,
             "{\"v\":1,\"frame_id\":\"%s\",\"timestamp_ns\":%lld,\"width\":%d,\"height\":%d,"
             "\"rgb\":\"rgb8\",\"xyz\":\"xyz_f32le\",\"unit\":\"m\"}",
             frame_id, wall_ns(), o->width, o->height);
    size_t pixels = (size_t)o->width * o->height;
    if (zmq_send(socket, o->topic, strlen(o->topic), ZMQ_SNDMORE) < 0) return -1;
    if (zmq_send(socket, header, strlen(header), ZMQ_SNDMORE) < 0) return -1;
    if (zmq_send(socket, rgb, pixels * 3, ZMQ_SNDMORE) < 0) return -1;
    if (zmq_send(socket, xyz, pixels * 12, 0) < 0) return -1;
    return 0;
}

/* ---- minimal JSON field extraction ---------------------------------------------------- */
/*
 * Results and heartbeats are one flat JSON object whose values are numbers, strings, null
 * or (for `error` and `stages_ms`) a small object. These helpers find a member of an
 * object by key at that object's own level (skipping strings and nested values), which is
 * all a client needs. They do not validate the JSON.
 */

/* Returns a pointer just past the JSON value starting at p (a string, object, array or scalar). */
static const char *skip_value(const char *p)
{
    int depth = 0, in_string = 0;
    for (; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') { in_string = 0; if (depth == 0) return p + 1; }
        } else if (*p == '"') in_string = 1;
        else if (*p == '{' || *p == '[') depth++;
        else if (*p == '}' || *p == ']') { if (--depth <= 0) return depth < 0 ? p : p + 1; }
        else if (depth == 0 && (*p == ',')) return p;
    }
    return p;
}

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* The value of member `key` of the object starting at `object` ('{'), or NULL if absent. */
static const char *json_member(const char *object, const char *key)
{
    const char *p = skip_space(object);
    if (*p != '{') return NULL;
    size_t key_length = strlen(key);
    p = skip_space(p + 1);
    while (*p == '"') {
        const char *name = p + 1, *end = skip_value(p) - 1; /* the closing quote */
        p = skip_space(end + 1);
        if (*p != ':') return NULL;
        const char *value = skip_space(p + 1);
        if ((size_t)(end - name) == key_length && !strncmp(name, key, key_length)) return value;
        p = skip_space(skip_value(value));
        if (*p != ',') return NULL;
        p = skip_space(p + 1);
    }
    return NULL;
}

/* Copies the string member `key` into out (escapes resolved, \uXXXX kept as '?');
 * "null" when it is null or absent. */
static void json_string(const char *object, const char *key, char *out, size_t size)
{
    const char *p = json_member(object, key);
    size_t n = 0;
    if (!p || *p != '"') {
        snprintf(out, size, "null");
        return;
    }
    for (p++; *p && *p != '"' && n + 1 < size; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            switch (*p) {
            case 'n': out[n++] = '\n'; break;
            case 't': out[n++] = '\t'; break;
            case 'u': out[n++] = '?'; for (int k = 0; k < 4 && p[1]; k++) p++; break;
            default: out[n++] = *p; break; /* \" \\ \/ */
            }
        } else out[n++] = *p;
    }
    out[n] = '\0';
}

/* The number member `key`; `fallback` when it is null or absent. */
static double json_number(const char *object, const char *key, double fallback)
{
    const char *p = json_member(object, key);
    if (!p || *p == 'n' || *p == '"' || *p == '{') return fallback;
    return strtod(p, NULL);
}

/* ---- receiving -------------------------------------------------------------------------- */

/* Receives one multipart message: part 0 into topic, part 1 into body (both NUL-terminated,
 * truncated to their size); later parts (an anomaly map) are read and ignored. */
static int receive_message(void *socket, char *topic, size_t topic_size, char *body, size_t body_size)
{
    topic[0] = body[0] = '\0';
    for (int part = 0;; part++) {
        zmq_msg_t message;
        zmq_msg_init(&message);
        if (zmq_msg_recv(&message, socket, 0) < 0) { zmq_msg_close(&message); return -1; }
        char *out = part == 0 ? topic : part == 1 ? body : NULL;
        size_t size = part == 0 ? topic_size : body_size;
        if (out) {
            size_t n = zmq_msg_size(&message) < size - 1 ? zmq_msg_size(&message) : size - 1;
            memcpy(out, zmq_msg_data(&message), n);
            out[n] = '\0';
        }
        int more = zmq_msg_more(&message);
        zmq_msg_close(&message);
        if (!more) return 0;
    }
}

/* What this client has seen of the result stream. */
struct stream {
    int sent, answered, duplicates, heartbeats;
    int counts[4];           /* pass, reject, error, dropped */
    long long last_seq;      /* the last result's seq; -1 before the first */
    long long missed;        /* results skipped by seq (SUB only) */
    unsigned char *answers;  /* per frame index: results received */
};

static const char *verdicts[4] = {"pass", "reject", "error", "dropped"};

/* Handles one message from the result socket. */
static void handle(const struct options *o, struct stream *s, const char *run, const char *topic, const char *body)
{
    size_t prefix_length = strlen(o->prefix);
    const char *kind = !strncmp(topic, o->prefix, prefix_length) && topic[prefix_length] == '.' ? topic + prefix_length + 1 : "";
    if (!strcmp(kind, "heartbeat")) {
        s->heartbeats++;
        printf("heartbeat: received %.0f, published %.0f, undelivered %.0f, queued %.0f, in flight %.0f, last seq %.0f\n",
               json_number(body, "received", -1), json_number(body, "published", -1),
               json_number(body, "undelivered", -1), json_number(body, "queued", -1),
               json_number(body, "in_flight", -1), json_number(body, "last_seq", -1));
        return;
    }

    /* seq numbers every result of one daemon: a jump means results this subscriber missed.
     * Results collected from several daemons interleave their numbers: not checked then. */
    long long seq = (long long)json_number(body, "seq", -1);
    if (!o->collect && seq >= 0) {
        if (s->last_seq >= 0 && seq > s->last_seq + 1) {
            printf("gap: results %lld..%lld never reached this client\n", s->last_seq + 1, seq - 1);
            s->missed += seq - s->last_seq - 1;
        } else if (s->last_seq >= 0 && seq <= s->last_seq) {
            printf("seq went back from %lld to %lld: the daemon restarted\n", s->last_seq, seq);
        }
        s->last_seq = seq;
    }

    char frame_id[300], verdict[16], code[64], model[300];
    json_string(body, "frame_id", frame_id, sizeof frame_id);
    json_string(body, "verdict", verdict, sizeof verdict);
    json_string(body, "model", model, sizeof model);
    const char *error = json_member(body, "error");
    if (error && *error == '{') json_string(error, "code", code, sizeof code);
    else snprintf(code, sizeof code, "-");

    /* Our frames are "<run>-<index>"; results of other senders' frames are not ours. */
    size_t run_length = strlen(run);
    if (strncmp(frame_id, run, run_length) || frame_id[run_length] != '-') return;
    int index = atoi(frame_id + run_length + 1);
    if (index < 0 || index >= s->sent) return;
    if (s->answers[index]++ > 0) {
        printf("%s answered again (%s): a frame must have exactly one result\n", frame_id, verdict);
        s->duplicates++;
        return;
    }
    s->answered++;
    for (int v = 0; v < 4; v++) if (!strcmp(verdict, verdicts[v])) s->counts[v]++;
    printf("%-24s %-7s score %-10.4f seq %-6lld error %-14s model %s\n", frame_id, verdict,
           json_number(body, "score", NAN), seq, code, model);
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct options o;
    if (parse_options(argc, argv, &o) < 0) {
        usage(argv[0]);
        return 1;
    }
    void *context = zmq_ctx_new();
    void *results = zmq_socket(context, o.collect ? ZMQ_PULL : ZMQ_SUB);
    void *sender = zmq_socket(context, o.pub ? ZMQ_PUB : ZMQ_PUSH);
    int linger_ms = 2000, send_timeout_ms = (int)(o.timeout_s * 1000);
    zmq_setsockopt(sender, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    /* A PUSH without a daemon to take the frame would wait forever: give up after the timeout. */
    zmq_setsockopt(sender, ZMQ_SNDTIMEO, &send_timeout_ms, sizeof send_timeout_ms);
    if (!o.collect) zmq_setsockopt(results, ZMQ_SUBSCRIBE, o.prefix, strlen(o.prefix)); /* results and heartbeats */
    if ((o.collect ? zmq_bind(results, o.results) : zmq_connect(results, o.results)) < 0 ||
        (o.bind ? zmq_bind(sender, o.endpoint) : zmq_connect(sender, o.endpoint)) < 0) {
        fprintf(stderr, "client_example: %s\n", zmq_strerror(errno));
        return 1;
    }
    sleep_s(o.warmup_s); /* subscriptions and connections form asynchronously */

    size_t pixels = (size_t)o.width * o.height;
    unsigned char *rgb = malloc(pixels * 3), *xyz = malloc(pixels * 12);
    struct stream s = {0, 0, 0, 0, {0, 0, 0, 0}, -1, 0, calloc((size_t)o.frames, 1)};
    if (!rgb || !xyz || !s.answers) {
        fprintf(stderr, "client_example: out of memory\n");
        return 1;
    }
    synthetic_frame(o.width, o.height, rgb, xyz);
    char run[32];
    snprintf(run, sizeof run, "c%llx", (unsigned long long)(wall_ns() / 1000) % 0xffffffULL);

    char topic[256], body[65536];
    zmq_pollitem_t item = {results, 0, ZMQ_POLLIN, 0};
    for (int i = 0; i < o.frames; i++) {
        char frame_id[64];
        snprintf(frame_id, sizeof frame_id, "%s-%d", run, i);
        if (send_frame(sender, &o, frame_id, rgb, xyz) < 0) {
            int timed_out = errno == EAGAIN;
            fprintf(stderr, "client_example: sending %s: %s\n", frame_id,
                    timed_out ? "no daemon took the frame within the timeout" : zmq_strerror(errno));
            return timed_out ? 2 : 1;
        }
        s.sent++;
        /* Read what has arrived meanwhile (without waiting). */
        while (zmq_poll(&item, 1, 0) > 0 && receive_message(results, topic, sizeof topic, body, sizeof body) == 0)
            handle(&o, &s, run, topic, body);
    }

    double deadline = monotonic_s() + o.timeout_s;
    while (s.answered < s.sent && monotonic_s() < deadline) {
        long wait_ms = (long)((deadline - monotonic_s()) * 1000) + 1;
        int ready = zmq_poll(&item, 1, wait_ms);
        if (ready < 0 && errno != EINTR) {
            fprintf(stderr, "client_example: poll: %s\n", zmq_strerror(errno));
            return 1;
        }
        if (ready > 0 && receive_message(results, topic, sizeof topic, body, sizeof body) == 0)
            handle(&o, &s, run, topic, body);
    }
    /* A moment more to catch a late duplicate. */
    while (zmq_poll(&item, 1, 200) > 0 && receive_message(results, topic, sizeof topic, body, sizeof body) == 0)
        handle(&o, &s, run, topic, body);

    printf("sent %d, answered %d, pass %d, reject %d, error %d, dropped %d, duplicates %d, heartbeats %d, missed by seq %lld\n",
           s.sent, s.answered, s.counts[0], s.counts[1], s.counts[2], s.counts[3], s.duplicates, s.heartbeats, s.missed);
    int status = 0;
    if (s.duplicates > 0) {
        fprintf(stderr, "client_example: %d frame(s) answered more than once\n", s.duplicates);
        status = 3;
    } else if (s.answered < s.sent) {
        fprintf(stderr, "client_example: timeout after %.1f s: %d of %d frames unanswered, first ", o.timeout_s,
                s.sent - s.answered, s.sent);
        for (int i = 0; i < s.sent; i++) if (!s.answers[i]) { fprintf(stderr, "%s-%d\n", run, i); break; }
        status = 2;
    }
    free(rgb);
    free(xyz);
    free(s.answers);
    zmq_close(sender);
    zmq_close(results);
    zmq_ctx_term(context);
    return status;
}
