/* layers.h: neural-network layers on oneDNN primitives (filled in by the training-core work). */
#ifndef CCDL_LAYERS_H
#define CCDL_LAYERS_H
#endif
