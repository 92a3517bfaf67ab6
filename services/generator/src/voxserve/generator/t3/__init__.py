"""Chatterbox T3 (text -> S3 speech tokens) served by vLLM: its sizes (`config`), checkpoint
(`checkpoint`), voices (`voice`), text (`text`), prompt rows (`conditioning`), the vLLM model
(`model`, registered by `plugin`) and classifier-free guidance (`guidance`)."""
