/* Linked only into a FASTMLP_PORTABLE_GLIBC build (the manylinux2014 wheels): module-local (hidden)
 * definitions of the glibc symbols that the statically linked libstdc++ references at versions newer
 * than 2.17. The linker binds libstdc++'s references to these instead of to glibc's new versions;
 * nothing outside the module sees them. Not a general glibc shim: only what `objdump -T` on the module
 * listed (scripts/build_wheels.sh fails when auditwheel finds a newer symbol again). C, not C++, so
 * that the prototypes need not match the C++ declarations' exception specifications. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FASTMLP_LOCAL __attribute__((visibility("hidden")))

/* glibc 2.32 made libstdc++ skip atomic reference counts while this is non-zero; 0 keeps them always
 * atomic (correct in every process, the behaviour before 2.32). */
FASTMLP_LOCAL char __libc_single_threaded = 0;

/* glibc 2.34 moved these from libpthread into libc under new versions. Forward to the 2.2.5 versions,
 * which every glibc since then exports (from libpthread.so.0 up to 2.33, from libc.so.6 after). The
 * pointer arguments are opaque here: pthread.h is not included, so no declaration can conflict. */
#define FASTMLP_FORWARD(ret, name, params, args)                         \
    ret fastmlp_old_##name params;                                       \
    __asm__(".symver fastmlp_old_" #name "," #name "@GLIBC_2.2.5");      \
    FASTMLP_LOCAL ret name params { return fastmlp_old_##name args; }

FASTMLP_FORWARD(int, pthread_once, (void* once, void (*init)(void)), (once, init))
FASTMLP_FORWARD(int, pthread_key_create, (unsigned* key, void (*destroy)(void*)), (key, destroy))
FASTMLP_FORWARD(int, pthread_key_delete, (unsigned key), (key))
FASTMLP_FORWARD(void*, pthread_getspecific, (unsigned key), (key))
FASTMLP_FORWARD(int, pthread_setspecific, (unsigned key, const void* value), (key, value))
FASTMLP_FORWARD(int, pthread_mutex_trylock, (void* mutex), (mutex))

/* glibc 2.25 (getentropy) and 2.36 (arc4random), used by std::random_device: the getrandom system
 * call, and /dev/urandom on kernels older than 3.17 (ENOSYS), which manylinux2014 systems may run. */
static int read_urandom(unsigned char* out, size_t len) {
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    while (len > 0) {
        ssize_t n = read(fd, out, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        out += n;
        len -= (size_t)n;
    }
    close(fd);
    return 0;
}

FASTMLP_LOCAL int getentropy(void* buffer, size_t len) {
    unsigned char* out = (unsigned char*)buffer;
    if (len > 256) {
        errno = EIO;
        return -1;
    }
    while (len > 0) {
        long n = syscall(SYS_getrandom, out, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == ENOSYS) return read_urandom(out, len);
        if (n < 0) return -1;
        out += n;
        len -= (size_t)n;
    }
    return 0;
}

FASTMLP_LOCAL uint32_t arc4random(void) {
    uint32_t value = 0;
    if (getentropy(&value, sizeof value) != 0) abort(); /* arc4random cannot fail */
    return value;
}
