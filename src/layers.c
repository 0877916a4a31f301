/* layers.c: see layers.h. */
#include "layers.h"
