// bcryptprimitives.c: a stand-in bcryptprimitives.dll for wine 8.0, which
// lacks one. Go 1.24+ Windows binaries get their random bytes from its
// ProcessPrng and load it from system32 only, so without this file they die
// at startup under wine. scripts/platforms.sh builds it with MinGW and puts
// it in its private wine prefix; nothing ships it.
//
// ProcessPrng fills data with cryptographically random bytes from advapi32's
// RtlGenRandom (exported as SystemFunction036), which wine implements. It
// never fails on real Windows; here it fails only if RtlGenRandom does.
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size) {
	// RtlGenRandom takes a ULONG length: feed it at most 1 GiB at a time.
	while (size > 0) {
		ULONG n = size > 0x40000000 ? 0x40000000 : (ULONG)size;
		if (!SystemFunction036(data, n)) {
			return FALSE;
		}
		data += n;
		size -= n;
	}
	return TRUE;
}
