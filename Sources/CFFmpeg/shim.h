#ifndef STREAMTUBE_CFFMPEG_SHIM_H
#define STREAMTUBE_CFFMPEG_SHIM_H
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <libswresample/swresample.h>

/* Function-like macros do not import into Swift. */
static inline int st_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int st_averror_eof(void) { return AVERROR_EOF; }
#endif
