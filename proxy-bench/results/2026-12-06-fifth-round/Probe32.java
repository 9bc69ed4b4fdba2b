public class Probe32 { public static void main(String[] a) throws Exception {
  for (int i = 0; i < 2; i++) System.out.printf("%.2f ns/B%n", io.megallm.proxy.bench.harness.PageCacheProbe.nanosPerByte(java.nio.file.Path.of("/tmp"), 32L<<20)); } }
