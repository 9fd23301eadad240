/*
 * feedjpeg - feed JPEG files into a v4l2loopback output device as MJPEG frames.
 *
 * Built static on the host by vm/setup.sh and put into the guest at /vm/bin/feedjpeg.
 *
 *   feedjpeg [-r FPS] [-n FRAMES] [-k] [-q] DEVICE PATH...
 *
 * PATH is a JPEG file or a directory (its *.jpg / *.jpeg files, sorted by name).
 * All files are loaded once; each is then written with a single write() - which
 * v4l2loopback turns into exactly one captured frame - at FPS frames per second
 * (default 15), looping over the list until FRAMES frames were written (default:
 * forever).  Unless -k is given, the output format is first set to MJPG with the
 * width/height read from the first JPEG's SOF marker (VIDIOC_S_FMT) and the
 * frame rate announced with VIDIOC_S_PARM; load v4l2loopback with keep_format=1
 * so the format survives between writers.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct frame { char *name; unsigned char *data; size_t len; };
static struct frame *frames;
static size_t nframes, capframes;
static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "feedjpeg: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, ": %s\n", strerror(errno));
    exit(1);
}

static void load_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) die("stat %s", path);
    unsigned char *buf = malloc(st.st_size ? st.st_size : 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, st.st_size - got);
        if (r < 0) { if (errno == EINTR) continue; die("read %s", path); }
        if (r == 0) break;
        got += r;
    }
    close(fd);
    if (nframes == capframes) {
        capframes = capframes ? capframes * 2 : 16;
        frames = realloc(frames, capframes * sizeof *frames);
    }
    frames[nframes].name = strdup(path);
    frames[nframes].data = buf;
    frames[nframes].len = got;
    nframes++;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_jpeg_name(const char *n) {
    const char *dot = strrchr(n, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static void load_path(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) die("stat %s", path);
    if (!S_ISDIR(st.st_mode)) { load_file(path); return; }
    DIR *d = opendir(path);
    if (!d) die("opendir %s", path);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_jpeg_name(e->d_name)) continue;
        if (n == cap) { cap = cap ? cap * 2 : 32; names = realloc(names, cap * sizeof *names); }
        if (asprintf(&names[n], "%s/%s", path, e->d_name) < 0) exit(1);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) { load_file(names[i]); free(names[i]); }
    free(names);
}

/* Width/height from the first SOFn marker; 0 on failure. */
static int jpeg_size(const unsigned char *p, size_t len, unsigned *w, unsigned *h) {
    size_t i = 2;
    if (len < 4 || p[0] != 0xFF || p[1] != 0xD8) return 0;
    while (i + 4 <= len) {
        if (p[i] != 0xFF) return 0;
        unsigned char m = p[i + 1];
        if (m == 0xFF) { i++; continue; }
        size_t seglen = (p[i + 2] << 8) | p[i + 3];
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            if (i + 9 > len) return 0;
            *h = (p[i + 5] << 8) | p[i + 6];
            *w = (p[i + 7] << 8) | p[i + 8];
            return 1;
        }
        i += 2 + seglen;
    }
    return 0;
}

int main(int argc, char **argv) {
    double fps = 15;
    long long limit = -1;
    int keep = 0, quiet = 0, opt;
    while ((opt = getopt(argc, argv, "r:n:kqh")) != -1) {
        switch (opt) {
        case 'r': fps = atof(optarg); break;
        case 'n': limit = atoll(optarg); break;
        case 'k': keep = 1; break;
        case 'q': quiet = 1; break;
        default:
            fprintf(stderr, "usage: feedjpeg [-r FPS] [-n FRAMES] [-k] [-q] DEVICE PATH...\n");
            return 2;
        }
    }
    if (argc - optind < 2 || fps <= 0) {
        fprintf(stderr, "usage: feedjpeg [-r FPS] [-n FRAMES] [-k] [-q] DEVICE PATH...\n");
        return 2;
    }
    const char *dev = argv[optind];
    for (int i = optind + 1; i < argc; i++) load_path(argv[i]);
    if (!nframes) { fprintf(stderr, "feedjpeg: no JPEG files found\n"); return 1; }

    int fd = open(dev, O_RDWR);
    if (fd < 0) die("open %s", dev);

    size_t maxlen = 0;
    for (size_t i = 0; i < nframes; i++) if (frames[i].len > maxlen) maxlen = frames[i].len;

    if (!keep) {
        unsigned w = 0, h = 0;
        if (!jpeg_size(frames[0].data, frames[0].len, &w, &h)) {
            fprintf(stderr, "feedjpeg: %s: cannot read JPEG size\n", frames[0].name);
            return 1;
        }
        struct v4l2_format f;
        memset(&f, 0, sizeof f);
        f.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        f.fmt.pix.width = w;
        f.fmt.pix.height = h;
        f.fmt.pix.pixelformat = V4L2_PIX_FMT_MJPEG;
        f.fmt.pix.field = V4L2_FIELD_NONE;
        f.fmt.pix.sizeimage = maxlen;
        f.fmt.pix.colorspace = V4L2_COLORSPACE_JPEG;
        if (ioctl(fd, VIDIOC_S_FMT, &f) < 0) die("VIDIOC_S_FMT %s", dev);
        if (f.fmt.pix.sizeimage < maxlen)
            fprintf(stderr, "feedjpeg: warning: sizeimage %u < largest frame %zu (frames will be cut)\n",
                    f.fmt.pix.sizeimage, maxlen);
        struct v4l2_streamparm parm;
        memset(&parm, 0, sizeof parm);
        parm.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
        parm.parm.output.timeperframe.numerator = 1000;
        parm.parm.output.timeperframe.denominator = (unsigned)(fps * 1000 + 0.5);
        if (ioctl(fd, VIDIOC_S_PARM, &parm) < 0 && !quiet)
            fprintf(stderr, "feedjpeg: VIDIOC_S_PARM: %s (ignored)\n", strerror(errno));
        if (!quiet)
            fprintf(stderr, "feedjpeg: %s: MJPG %ux%u, %zu file(s), %.2f fps\n", dev, w, h, nframes, fps);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    long long period_ns = (long long)(1e9 / fps);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    long long written = 0;
    while (!stop && (limit < 0 || written < limit)) {
        struct frame *fr = &frames[written % nframes];
        ssize_t r = write(fd, fr->data, fr->len);
        if (r < 0) {
            if (errno == EINTR) continue;
            die("write %s", dev);
        }
        if ((size_t)r != fr->len)
            fprintf(stderr, "feedjpeg: short write %zd of %zu (%s)\n", r, fr->len, fr->name);
        written++;
        next.tv_nsec += period_ns % 1000000000LL;
        next.tv_sec += period_ns / 1000000000LL + next.tv_nsec / 1000000000LL;
        next.tv_nsec %= 1000000000LL;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR && !stop) {}
    }
    if (!quiet) fprintf(stderr, "feedjpeg: wrote %lld frame(s)\n", written);
    close(fd);
    return 0;
}
