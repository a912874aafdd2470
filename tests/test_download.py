"""ikm_nb.download against a loopback HTTP server started here (no internet): checksums, resume, safe unpacking."""
import hashlib, http.server, io, re, stat, tarfile, threading, zipfile

import pytest

from ikm_nb.download import (download, fetch, safe_extract, image_root, Source, SOURCES, DownloadError,
                             ChecksumError, UnsafeArchiveError, download_benchmark, edsr_benchmark_source)
from ikm_nb.data import find_benchmark, list_images, load_image


# ---------------------------------------------------------------- the server
class Server:
    "Files from a dict, with Range support; logs every request; can drop a connection or ignore Range."
    def __init__(self):
        self.files, self.log = {}, []
        self.cut_after = None      # bytes after which the next response is cut (a dropped connection), once
        self.ignore_range = False  # answer 200 with the whole file even to a Range request
        srv = self
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            def log_message(self, *a): pass
            def do_GET(self):
                path = self.path.split('?')[0]
                rng = self.headers.get('Range')
                entry = dict(path=path, range=rng, sent=0, status=None)
                srv.log.append(entry)
                if path not in srv.files:
                    entry['status'] = 404
                    self.send_response(404); self.send_header('Content-Length', '0'); self.end_headers(); return
                data = srv.files[path]
                start, end = 0, len(data) - 1
                m = re.fullmatch(r'bytes=(\d+)-(\d*)', rng or '')
                if m and not srv.ignore_range:
                    start = int(m.group(1)); end = int(m.group(2)) if m.group(2) else end
                    if start >= len(data):
                        entry['status'] = 416
                        self.send_response(416); self.send_header('Content-Range', f'bytes */{len(data)}')
                        self.send_header('Content-Length', '0'); self.end_headers(); return
                    self.send_response(206); self.send_header('Content-Range', f'bytes {start}-{end}/{len(data)}')
                    entry['status'] = 206
                else:
                    self.send_response(200); entry['status'] = 200
                body = data[start:end + 1]
                self.send_header('Content-Length', str(len(body))); self.send_header('Accept-Ranges', 'bytes')
                self.end_headers()
                if srv.cut_after is not None:
                    body = body[:srv.cut_after]; srv.cut_after = None
                    entry['sent'] = len(body); self.wfile.write(body); self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2); return
                entry['sent'] = len(body)            # logged before writing: the client may finish first
                self.wfile.write(body)
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
        self.thread.start()
    def url(self, path): return self.base + path
    def close(self):
        if self.httpd is not None: self.httpd.shutdown(); self.httpd.server_close(); self.httpd = None

@pytest.fixture
def server(monkeypatch):
    for k in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY'): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')
    s = Server()
    yield s
    s.close()

def blob(n, seed=0):
    return bytes((i * 7919 + seed * 104729 + (i >> 8)) % 251 for i in range(n))

def sha(b): return hashlib.sha256(b).hexdigest()


# ---------------------------------------------------------------- downloads
def test_full_download(server, tmp_path, capsys):
    data = blob(300_000); server.files['/a.bin'] = data
    f = download(server.url('/a.bin'), tmp_path / 'a.bin', sha256=sha(data), size=len(data), progress=True)
    assert f.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.bin']       # no .part, no SHA256SUMS (published checksum)
    assert [(e['range'], e['status'], e['sent']) for e in server.log] == [(None, 200, len(data))]
    assert 'a.bin' in capsys.readouterr().err                            # tqdm progress bar
    assert download(server.url('/a.bin'), tmp_path / 'a.bin', sha256=sha(data), progress=False) == f
    assert len(server.log) == 1                                          # present and verified: not downloaded again

def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    data = blob(50_000); server.files['/a.bin'] = data
    with pytest.raises(ChecksumError, match=r'does not match the published checksum.*the file was removed') as e:
        download(server.url('/a.bin'), tmp_path / 'a.bin', sha256='ab' * 32, progress=False)
    assert server.url('/a.bin') in str(e.value) and sha(data) in str(e.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ChecksumError, match='expected size'):
        download(server.url('/a.bin'), tmp_path / 'a.bin', size=49_999, progress=False)
    assert list(tmp_path.iterdir()) == []

def test_resume_requests_only_the_remainder(server, tmp_path):
    data = blob(400_000); server.files['/big.zip'] = data
    (tmp_path / 'big.zip.part').write_bytes(data[:123_456])              # left by an interrupted run
    f = download(server.url('/big.zip'), tmp_path / 'big.zip', sha256=sha(data), progress=False)
    assert f.read_bytes() == data
    assert [(e['range'], e['status'], e['sent']) for e in server.log] == [('bytes=123456-', 206, len(data) - 123_456)]
    assert not (tmp_path / 'big.zip.part').exists()

def test_resume_after_dropped_connection(server, tmp_path):
    data = blob(250_000); server.files['/x.tar'] = data
    server.cut_after = 100_000
    f = download(server.url('/x.tar'), tmp_path / 'x.tar', sha256=sha(data), progress=False, retries=2, timeout=5)
    assert f.read_bytes() == data
    assert [e['range'] for e in server.log] == [None, 'bytes=100000-']
    assert server.log[1]['sent'] == 150_000

def test_dropped_connection_keeps_part_for_later(server, tmp_path):
    data = blob(80_000); server.files['/x.tar'] = data
    server.cut_after = 30_000
    with pytest.raises(DownloadError, match='run again to resume'):
        download(server.url('/x.tar'), tmp_path / 'x.tar', sha256=sha(data), progress=False, retries=0, timeout=5)
    assert (tmp_path / 'x.tar.part').stat().st_size == 30_000 and not (tmp_path / 'x.tar').exists()
    download(server.url('/x.tar'), tmp_path / 'x.tar', sha256=sha(data), progress=False)
    assert server.log[-1]['range'] == 'bytes=30000-' and (tmp_path / 'x.tar').read_bytes() == data

def test_server_ignoring_range_restarts(server, tmp_path):
    data = blob(60_000); server.files['/a.bin'] = data
    server.ignore_range = True
    (tmp_path / 'a.bin.part').write_bytes(b'garbage that must not stay at the front')
    f = download(server.url('/a.bin'), tmp_path / 'a.bin', sha256=sha(data), progress=False)
    assert f.read_bytes() == data and server.log[0]['status'] == 200

def test_complete_part_and_416(server, tmp_path):
    data = blob(10_000); server.files['/a.bin'] = data
    (tmp_path / 'a.bin.part').write_bytes(data)                          # fully downloaded, not yet verified
    f = download(server.url('/a.bin'), tmp_path / 'a.bin', sha256=sha(data), size=len(data), progress=False)
    assert f.read_bytes() == data and server.log[0]['status'] == 416

def test_http_errors(server, tmp_path):
    with pytest.raises(DownloadError, match=r'/nope.zip: HTTP 404') as e:
        download(server.url('/nope.zip'), tmp_path / 'nope.zip', progress=False)
    assert 'download it by hand' in str(e.value)
    assert list(tmp_path.iterdir()) == []
    port = server.httpd.server_address[1]; server.close()
    with pytest.raises(DownloadError, match='run again to resume'):
        download(f'http://127.0.0.1:{port}/a.bin', tmp_path / 'a.bin', progress=False, retries=0, timeout=2)

def test_checksum_recorded_at_first_download(server, tmp_path):
    data = blob(20_000); server.files['/s.tar.gz'] = data
    download(server.url('/s.tar.gz'), tmp_path / 's.tar.gz', progress=False)
    assert (tmp_path / 'SHA256SUMS').read_text() == f'{sha(data)}  s.tar.gz\n'
    (tmp_path / 's.tar.gz').unlink()
    server.files['/s.tar.gz'] = blob(20_000, seed=1)                     # the server's copy changes
    with pytest.raises(ChecksumError, match='recorded at first download'):
        download(server.url('/s.tar.gz'), tmp_path / 's.tar.gz', progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['SHA256SUMS']

def test_corrupt_complete_file_is_fetched_again(server, tmp_path):
    data = blob(5_000); server.files['/a.bin'] = data
    (tmp_path / 'a.bin').write_bytes(b'bit rot')
    assert download(server.url('/a.bin'), tmp_path / 'a.bin', sha256=sha(data), progress=False).read_bytes() == data

def test_concurrent_download_refused(server, tmp_path):
    fcntl = pytest.importorskip('fcntl')
    data = blob(5_000); server.files['/a.bin'] = data
    with open(tmp_path / 'a.bin.part', 'ab') as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(DownloadError, match='another process'):
            download(server.url('/a.bin'), tmp_path / 'a.bin', progress=False)
    assert server.log == []


# ---------------------------------------------------------------- archives
def make_zip(entries):
    "entries: (name, bytes) or (ZipInfo, bytes)."
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w') as z:
        for name, data in entries: z.writestr(name, data)
    return b.getvalue()

def make_tar(entries, mode='w'):
    "entries: (name, bytes) for files, or TarInfo for anything else."
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode=mode) as t:
        for e in entries:
            if isinstance(e, tarfile.TarInfo): t.addfile(e)
            else:
                name, data = e; ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    return b.getvalue()

def tinfo(name, type_, linkname=''):
    ti = tarfile.TarInfo(name); ti.type = type_; ti.linkname = linkname
    return ti

def zinfo_link(name):
    zi = zipfile.ZipInfo(name); zi.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zi

def zinfo_dev(name):
    zi = zipfile.ZipInfo(name); zi.external_attr = (stat.S_IFCHR | 0o666) << 16
    return zi

EVIL_ZIPS = {
    'dotdot':   ([('ok/a.png', b'a'), ('../evil.txt', b'x')], "escape the target folder"),
    'nested':   ([('ok/../../evil.txt', b'x')], "escape the target folder"),
    'absolute': ([('/tmp/evil.txt', b'x')], 'absolute path'),
    'windows':  ([('C:\\evil.txt', b'x')], 'absolute path'),
    'backslash':([('ok\\..\\..\\evil.txt', b'x')], "escape the target folder"),
    'symlink':  ([(zinfo_link('ok/link'), b'/etc/passwd')], 'symbolic link'),
    'device':   ([(zinfo_dev('ok/dev'), b'')], 'special file'),
    'twice':    ([('a.png', b'1'), ('a.png', b'2')], 'appears twice'),
}
EVIL_TARS = {
    'dotdot':   ([('ok/a.png', b'a'), ('../evil.txt', b'x')], "escape the target folder"),
    'absolute': ([('/tmp/evil.txt', b'x')], 'absolute path'),
    'symlink':  ([tinfo('ok/link', tarfile.SYMTYPE, '/etc'), ('ok/link/passwd', b'x')], 'symbolic link'),
    'hardlink': ([('ok/a.png', b'a'), tinfo('ok/h', tarfile.LNKTYPE, '/etc/passwd')], 'hard link'),
    'chardev':  ([tinfo('ok/null', tarfile.CHRTYPE)], 'special file'),
    'blockdev': ([tinfo('ok/sda', tarfile.BLKTYPE)], 'special file'),
    'fifo':     ([tinfo('ok/fifo', tarfile.FIFOTYPE)], 'special file'),
}

@pytest.mark.filterwarnings('ignore:Duplicate name')
@pytest.mark.parametrize('kind', list(EVIL_ZIPS))
def test_malicious_zip_refused(tmp_path, kind):
    entries, msg = EVIL_ZIPS[kind]
    (tmp_path / 'dl').mkdir(); a = tmp_path / 'dl' / 'evil.zip'; a.write_bytes(make_zip(entries))
    with pytest.raises(UnsafeArchiveError, match=re.escape(msg)) as e:
        safe_extract(a, tmp_path / 'out' / 'set', progress=False)
    assert 'evil.zip' in str(e.value)
    assert not (tmp_path / 'out').exists() or list((tmp_path / 'out').iterdir()) == []   # nothing written, no temp folder
    assert not (tmp_path / 'evil.txt').exists() and not (tmp_path / 'dl' / 'evil.txt').exists()

@pytest.mark.parametrize('kind', list(EVIL_TARS))
@pytest.mark.parametrize('mode', ['w', 'w:gz'])
def test_malicious_tar_refused(tmp_path, kind, mode):
    entries, msg = EVIL_TARS[kind]
    a = tmp_path / 'evil.tar'; a.write_bytes(make_tar(entries, mode))
    (tmp_path / 'out').mkdir()
    with pytest.raises(UnsafeArchiveError, match=re.escape(msg)):
        safe_extract(a, tmp_path / 'out' / 'set', progress=False)
    assert list((tmp_path / 'out').iterdir()) == []
    assert not (tmp_path / 'evil.txt').exists()

def test_safe_extract_layouts(tmp_path):
    z = tmp_path / 'b.zip'
    z.write_bytes(make_zip([('bench/Set5/HR/a.png', b'A'), ('bench/Set5/LR/X2/a.png', b'a'), ('bench/Set14/HR/b.png', b'B'),
                            ('bench/', b'')]))
    out = safe_extract(z, tmp_path / 'set5', subdir='bench/Set5/HR', progress=False)
    assert [p.name for p in out.iterdir()] == ['a.png'] and (out / 'a.png').read_bytes() == b'A'   # only that folder
    out = safe_extract(z, tmp_path / 'picked', pick=image_root, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*')) == ['a.png']           # the first HR folder
    with pytest.raises(FileExistsError, match='overwrite=True'): safe_extract(z, tmp_path / 'set5', progress=False)
    safe_extract(z, tmp_path / 'set5', subdir='bench/Set14/HR', overwrite=True, progress=False)
    assert [p.name for p in (tmp_path / 'set5').iterdir()] == ['b.png']
    with pytest.raises(DownloadError, match="no folder 'bench/Urban100'"):
        safe_extract(z, tmp_path / 'u', subdir='bench/Urban100', progress=False)
    (tmp_path / 'junk.zip').write_bytes(b'<html>rate limited</html>')
    with pytest.raises(DownloadError, match='neither a zip nor a tar'): safe_extract(tmp_path / 'junk.zip', tmp_path / 'j')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['b.zip', 'junk.zip', 'picked', 'set5']  # no temp folders left


# ---------------------------------------------------------------- fetching a set
def png(seed, size=(20, 16)):
    from PIL import Image
    import numpy as np
    b = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(b, 'PNG')
    return b.getvalue()

def test_fetch_benchmark_end_to_end(server, tmp_path):
    imgs = {f'img{i}.png': png(i) for i in range(3)}
    server.files['/Set9_HR.tar.gz'] = archive = make_tar([(f'Set9_HR/{k}', v) for k, v in imgs.items()], 'w:gz')
    src = Source('Set9', server.url('/Set9_HR.tar.gz'), 'Set9_HR.tar.gz', 'benchmarks/Set9', sha(archive), len(archive), None, 3)
    d = fetch(src, root=tmp_path, progress=False)
    assert d == tmp_path / 'benchmarks' / 'Set9'
    assert {p.name: p.read_bytes() for p in d.iterdir()} == imgs        # unpacked result correct
    assert (tmp_path / 'downloads' / 'Set9_HR.tar.gz').read_bytes() == archive
    s = find_benchmark('Set9', roots=[tmp_path])                         # and the data module finds it
    assert len(s) == 3 and load_image(s.files[0]).shape == (3, 20, 16)
    n = len(server.log)
    fetch(src, root=tmp_path, progress=False)
    assert len(server.log) == n                                           # complete: nothing downloaded again

def test_fetch_subdir_zip_and_count_check(server, tmp_path):
    entries = [(f'Flickr2K/Flickr2K_HR/{i:06d}.png', png(i)) for i in range(1, 4)] + [('Flickr2K/Flickr2K_LR_bicubic/X2/000001x2.png', png(9))]
    server.files['/F.zip'] = z = make_zip(entries)
    src = Source('Flickr2K', server.url('/F.zip'), 'F.zip', 'Flickr2K_HR', None, None, 'Flickr2K/Flickr2K_HR', 3)
    d = fetch(src, root=tmp_path, progress=False, keep_archive=False)
    assert [p.name for p in list_images(d)] == ['000001.png', '000002.png', '000003.png']
    assert not (tmp_path / 'downloads' / 'F.zip').exists()
    assert (tmp_path / 'downloads' / 'SHA256SUMS').read_text().split() == [sha(z), 'F.zip']     # recorded at first download
    bad = Source('Flickr2K', server.url('/F.zip'), 'F2.zip', 'Other_HR', None, None, 'Flickr2K/Flickr2K_HR', 2650)
    with pytest.raises(DownloadError, match='gave 3 images for Flickr2K, a complete copy has 2650'):
        fetch(bad, root=tmp_path, progress=False)
    assert not (tmp_path / 'Other_HR').exists()

def test_registry():
    assert SOURCES['DIV2K'].url == 'https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip'
    assert len(SOURCES['DIV2K'].sha256) == 64 and SOURCES['DIV2K'].size == 3530603713
    assert SOURCES['Flickr2K'].url == 'https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar'
    assert SOURCES['DIV2K'].n_images + SOURCES['Flickr2K'].n_images == 3450
    for s in ('Set5', 'Set14', 'BSD100', 'Urban100', 'Manga109'): assert SOURCES[s].dest == f'benchmarks/{s}'
    assert edsr_benchmark_source('Urban100').subdir == 'benchmark/Urban100/HR'
    with pytest.raises(Exception, match='no download known'): download_benchmark('Set99')
    with pytest.raises(ValueError, match="mirror='x'"): download_benchmark('Set5', mirror='x')

def test_download_benchmark_uses_local_copy(tmp_path):
    d = tmp_path / 'benchmarks' / 'Set5'; d.mkdir(parents=True)
    for i in range(5): (d / f'{i}.png').write_bytes(png(i))
    assert download_benchmark('set5', root=tmp_path, progress=False) == d  # complete: no network needed

def test_an_unverified_first_download_is_recorded_only_once_it_proved_good(server, tmp_path):
    """Issue 12: with no published checksum, an HTML error page served with status 200, or a body cut short without a
    Content-Length, used to be kept and its sha256 recorded, so every later try failed against the bad sum. Now nothing is
    recorded until the archive opens and unpacks to the whole set; the bad file is removed; the next run succeeds."""
    imgs = {f'img{i}.png': png(i) for i in range(3)}
    good = make_tar([(f'Set9_HR/{k}', v) for k, v in imgs.items()], 'w:gz')
    src = Source('Set9', server.url('/Set9_HR.tar.gz'), 'Set9_HR.tar.gz', 'benchmarks/Set9', None, None, None, 3)
    sums, arch = tmp_path / 'downloads' / 'SHA256SUMS', tmp_path / 'downloads' / 'Set9_HR.tar.gz'
    for bad in (b'<!DOCTYPE html><html><body>Rate limit exceeded</body></html>', good[:len(good) // 2]):
        server.files['/Set9_HR.tar.gz'] = bad
        with pytest.raises(DownloadError, match='(not a complete archive|an HTML page).*no checksum recorded'):
            fetch(src, root=tmp_path, progress=False)
        assert not arch.exists() and not sums.exists() and not (tmp_path / 'benchmarks' / 'Set9').exists()
    server.files['/Set9_HR.tar.gz'] = good                                # the server recovers: no hand edit needed
    d = fetch(src, root=tmp_path, progress=False)
    assert sorted(p.name for p in d.iterdir()) == sorted(imgs) and sums.read_text().split() == [sha(good), 'Set9_HR.tar.gz']

def test_forget_checksum_recovers_from_a_bad_recorded_sum(server, tmp_path):
    from ikm_nb.download import forget_checksum
    server.files['/x.bin'] = data = blob(5000)
    dest = tmp_path / 'x.bin'
    (tmp_path / 'SHA256SUMS').write_text(f"{'0' * 64}  x.bin\n")        # a sum an older version recorded from a bad download
    with pytest.raises(ChecksumError, match=r"forget_checksum\("): download(server.url('/x.bin'), dest, progress=False)
    assert forget_checksum(dest) and not dest.exists()
    assert download(server.url('/x.bin'), dest, progress=False).read_bytes() == data
    assert (tmp_path / 'SHA256SUMS').read_text().split() == [sha(data), 'x.bin']


def test_an_html_page_is_not_trusted_as_a_first_download(server, tmp_path):
    "No checksum known: a page served with status 200 instead of the archive is removed, and no checksum is pinned to it."
    server.files['/set.zip'] = b'<!DOCTYPE html>\n<html><body>Please sign in</body></html>'
    with pytest.raises(DownloadError, match='HTML page'):
        download(server.url('/set.zip'), tmp_path / 'set.zip', progress=False)
    assert not (tmp_path / 'set.zip').exists() and not (tmp_path / 'SHA256SUMS').exists()
    server.files['/set.zip'] = data = blob(3_000)                        # the real file, later: downloaded and recorded
    assert download(server.url('/set.zip'), tmp_path / 'set.zip', progress=False).read_bytes() == data
    assert (tmp_path / 'SHA256SUMS').read_text() == f'{sha(data)}  set.zip\n'
