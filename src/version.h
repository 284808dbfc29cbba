#ifndef VINR_VERSION_H
#define VINR_VERSION_H
#define VINR_VERSION "0.1.0"
#endif
