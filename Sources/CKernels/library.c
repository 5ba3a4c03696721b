/* A function of a library found by one of its neighbours (see sam3neck_kernels.h). */
#define _GNU_SOURCE
#include "sam3neck_kernels.h"

#include <dlfcn.h>

int sam3neck_call_in_library_of(const void *known, const char *name) {
  Dl_info info;
  if (!known || !name || !dladdr(known, &info) || !info.dli_fname) return -1;
  /* RTLD_NOLOAD: the library is already loaded (it holds `known`); this only takes a reference,
   * which finds its symbols even where it was loaded with local ones (Python's ctypes). */
  void *library = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  if (!library) return -1;
  int (*function)(void) = (int (*)(void))dlsym(library, name);
  int status = function ? function() : -1;
  dlclose(library);
  return status;
}
