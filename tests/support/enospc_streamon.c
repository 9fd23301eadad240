/* LD_PRELOAD shim for tests/v4l2_vivid.rs: VIDIOC_STREAMON fails with ENOSPC while the file
 * /tmp/usb-bus-full exists, as uvcvideo answers when the USB bus has no bandwidth left for
 * another isochronous stream (several YUYV cameras on one bus). Every other ioctl, and
 * STREAMON once the file is gone, goes to the real driver (vivid). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#include <linux/videodev2.h>

int ioctl(int fd, unsigned long request, ...) {
    static int (*real_ioctl)(int, unsigned long, ...);
    va_list args;
    va_start(args, request);
    void *arg = va_arg(args, void *);
    va_end(args);
    if (!real_ioctl) {
        real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    }
    if (request == VIDIOC_STREAMON && access("/tmp/usb-bus-full", F_OK) == 0) {
        errno = ENOSPC;
        return -1;
    }
    return real_ioctl(fd, request, arg);
}
