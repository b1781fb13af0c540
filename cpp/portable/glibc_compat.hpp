// Force-included (-include) into every translation unit of a FASTMLP_PORTABLE_GLIBC build: binds
// the glibc functions the module calls to their oldest x86-64 symbol versions, so the module
// loads on glibc 2.17 (manylinux2014) although it is linked on a newer glibc. Deliberately not
// used by a source build, which runs on the glibc it was built with.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
// The libm functions gained new default versions (GLIBC_2.27/2.29: the same results without the
// SVID error-handling wrapper) and memcpy one at 2.14; the 2.2.5 versions compute the same values.
__asm__(".symver exp,exp@GLIBC_2.2.5");
__asm__(".symver log,log@GLIBC_2.2.5");
__asm__(".symver pow,pow@GLIBC_2.2.5");
__asm__(".symver expf,expf@GLIBC_2.2.5");
__asm__(".symver logf,logf@GLIBC_2.2.5");
__asm__(".symver powf,powf@GLIBC_2.2.5");
__asm__(".symver exp2f,exp2f@GLIBC_2.2.5");
__asm__(".symver log2f,log2f@GLIBC_2.2.5");
__asm__(".symver memcpy,memcpy@GLIBC_2.2.5");
#endif
