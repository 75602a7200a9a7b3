// Token ids of whisper.cpp's greedy transcription, with the settings of asrquant's whisper.cpp peer
// (src/asrquant/engines.py: WhisperCppPeer), for builds other than the one pywhispercpp ships.
//
//   wcpp_tokens MODEL FLASH_ATTN(0|1) INPUT.f32 [mel]
//
// INPUT.f32: raw float32 16 kHz samples; with "mel", a float32 log-mel [80, 3000] (row major) given to
// whisper.cpp by whisper_set_mel in place of its own front end. Prints the ids below <|endoftext|>.
#include "whisper.h"

#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL FLASH_ATTN INPUT.f32 [mel]\n", argv[0]);
        return 2;
    }
    FILE * f = fopen(argv[3], "rb");
    if (!f) { perror(argv[3]); return 2; }
    std::vector<float> data;
    float buf[4096];
    size_t n;
    while ((n = fread(buf, sizeof(float), 4096, f)) > 0) data.insert(data.end(), buf, buf + n);
    fclose(f);
    const bool mel = argc > 4 && strcmp(argv[4], "mel") == 0;

    whisper_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    whisper_context_params cparams = whisper_context_default_params();
    cparams.use_gpu = false;
    cparams.flash_attn = argv[2][0] == '1';
    whisper_context * ctx = whisper_init_from_file_with_params(argv[1], cparams);
    if (!ctx) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }

    whisper_full_params p = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    p.n_threads = 1;
    p.print_progress = p.print_realtime = p.print_timestamps = p.print_special = false;
    p.no_context = true;
    p.no_timestamps = true;
    p.temperature = 0.0f;
    p.temperature_inc = 0.0f;
    p.greedy.best_of = 1;
    p.suppress_blank = true;
    p.suppress_nst = true;
    p.no_speech_thold = 1.0f;
    p.language = "en";

    int rc;
    if (mel) {
        if (whisper_set_mel(ctx, data.data(), (int) data.size() / 80, 80) != 0) { fprintf(stderr, "set_mel failed\n"); return 1; }
        rc = whisper_full(ctx, p, nullptr, 0);
    } else {
        rc = whisper_full(ctx, p, data.data(), (int) data.size());
    }
    if (rc != 0) { fprintf(stderr, "whisper_full: %d\n", rc); return 1; }
    const int eot = whisper_token_eot(ctx);
    for (int i = 0; i < whisper_full_n_segments(ctx); ++i) {
        for (int j = 0; j < whisper_full_n_tokens(ctx, i); ++j) {
            const int id = whisper_full_get_token_id(ctx, i, j);
            if (id < eot) printf("%d ", id);
        }
    }
    printf("\n");
    whisper_free(ctx);
    return 0;
}
