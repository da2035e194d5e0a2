// The gateway allocates per request across many threads; mimalloc keeps that
// cheap where the system allocator contends.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchboard::run()
}
