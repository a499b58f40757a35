#ifndef STREAMTUBE_CFFMPEG_SHIM_H
#define STREAMTUBE_CFFMPEG_SHIM_H
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <libswresample/swresample.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>

/* Function-like macros do not import into Swift. */
static inline int st_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int st_averror_eof(void) { return AVERROR_EOF; }

/* Helpers for the transcoder (Sources/Transcode): macros that do not import. */
static inline int64_t st_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline int st_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
static inline int st_averror_enomem(void) { return AVERROR(ENOMEM); }
static inline int st_av_pkt_flag_key(void) { return AV_PKT_FLAG_KEY; }
static inline int st_av_codec_flag_global_header(void) { return AV_CODEC_FLAG_GLOBAL_HEADER; }
static inline int st_av_frame_flag_corrupt(void) { return AV_FRAME_FLAG_CORRUPT; }
static inline int st_av_input_buffer_padding_size(void) { return AV_INPUT_BUFFER_PADDING_SIZE; }
/* Helpers for the thumbnailer (Sources/Transcode/Thumbnailer.swift). */
static inline int st_av_codec_flag_qscale(void) { return AV_CODEC_FLAG_QSCALE; }
static inline int st_ff_qp2lambda(void) { return FF_QP2LAMBDA; }
static inline int st_av_ef_explode(void) { return AV_EF_EXPLODE; }
static inline int st_av_ef_crccheck(void) { return AV_EF_CRCCHECK; }
#endif
