# expect: blocked
# tries: plant RestrictedPython hook names or __builtins__ through SafeDict, usercontext,
# evaluate() contexts and dylink, then use the planted hook to read a dunder attribute
def evil(ob, name, *rest):
    return 'ESCAPED: planted _getattr_ was used'

def plant(target, key):
    try:
        target[key] = evil
        log('ESCAPED: planted', key)
    except Exception:
        pass

hook = '_' + 'getattr_'
builtins_key = '_' + '_builtins_' + '_'
for key in (hook, builtins_key, '_' + 'write_', '_' + 'print_'):
    plant(usercontext, key)
    plant(SafeDict(), key)
    try:
        createvirtualnamespace('x = 1', 'n').evaluate({key: evil})
        log('ESCAPED: evaluate took', key)
    except ContextUnsafeError:
        pass
for probe in (usercontext, SafeDict({'a': 1})):
    try:
        if builtins_key in probe or probe.get(builtins_key) is not None:
            log('ESCAPED: builtins visible')
    except ValueError:
        pass
    for key in probe.keys():
        if key.startswith('_'):
            log('ESCAPED: private key listed', key)

class Sneaky(SafeDict):
    pass

try:
    createvirtualnamespace('y = 1', 'n').evaluate(Sneaky())
    log('ESCAPED: a SafeDict subclass was evaluated in')
except RepyArgumentError:
    pass
try:
    mod = dy_import_module('repy' + '.py')
    log('ESCAPED: imported a non-module file as code')
except Exception:
    pass
for name in ('../../etc/passwd', '/etc/passwd', 'dylink.r2py/../x'):
    try:
        dy_import_module(name)
        log('ESCAPED: imported', name)
    except Exception:
        pass
ns = createvirtualnamespace("z = str(log).upper()", 'probe')
result = ns.evaluate(SafeDict({'log': log}))
log('no hook was planted')
